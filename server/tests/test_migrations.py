"""The Alembic migrations build exactly the schema that kaizen_server.store.schema declares."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from kaizen_server.store.schema import metadata


def test_migrations_match_schema(store):
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)

    # Tables that other parts of the server add in their own migrations are not declared here.
    ours = [
        difference for difference in differences
        if not (isinstance(difference, tuple) and difference[0] == "remove_table" and difference[1].name not in metadata.tables)
        and not (isinstance(difference, tuple) and difference[0] == "remove_index" and difference[1].table.name not in metadata.tables)
    ]
    assert ours == []
