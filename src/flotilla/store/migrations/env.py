"""Alembic environment: runs on the connection flotilla.store.migrate hands over.

The caller holds the migration lock and the transaction; this file only runs
the scripts on that connection. Offline (SQL script) mode is not offered.
"""

from __future__ import annotations

from alembic import context

from flotilla.domain.errors import UsageError
from flotilla.store.schema import metadata

connection = context.config.attributes.get("connection")
if context.is_offline_mode() or connection is None:
    raise UsageError(
        "store migrations run through flotilla.store.open_store(url), not the alembic command"
    )

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
