"""Alembic environment: runs on the connection scorehouse hands over (see registry/migrate.py)."""

from alembic import context

from scorehouse.registry.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
