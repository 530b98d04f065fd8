"""In-database scoring: PL/Python functions in PostgreSQL that call the same Scorer."""
