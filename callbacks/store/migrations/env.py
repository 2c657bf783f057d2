"""Alembic environment: always run on the connection that callbacks.store.migrate hands over."""
from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
context.run_migrations()
