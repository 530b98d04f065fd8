"""The scorehouse command line."""
