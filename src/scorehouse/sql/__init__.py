"""In-database scoring: PL/Python functions in PostgreSQL that call the same Scorer."""

from .embedded import Registered, register

__all__ = ["register", "Registered"]
