"""Alembic environment: migrations run on the connection the server hands over.

`kaizen serve`, `kaizen db upgrade` and every other command call
`kaizen_server.store.engine.upgrade_database`, which passes its connection in
`config.attributes["connection"]`; there is no alembic.ini and no offline mode.
"""

from alembic import context

from kaizen_server.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `kaizen db upgrade`, which supplies the database connection")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
