"""Persistence of workers, their follow-up prompts and history: the truth of Flotilla.

    store = open_store("sqlite:///.flotilla/state.db")   # or postgresql://user@host/db
    worker = store.create_worker(Worker(...))
    store.update_worker(worker.id, expect_state=WorkerState.QUEUED, state=WorkerState.STARTING)

`open_store` migrates the database to the newest schema first (idempotent,
safe when several processes open it at once).
"""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

from flotilla.store import bus_schema as bus_schema  # registers the bus tables
from flotilla.store import coordination_schema as coordination_schema  # and the teams'
from flotilla.store import task_schema as task_schema  # registers the task tables
from flotilla.store.base import HistoryRow, PromptRow, PromptStatus, Store
from flotilla.store.engine import make_engine, parse_store_url, redact
from flotilla.store.errors import StaleState, StoreUnavailable
from flotilla.store.migrate import upgrade_to_head
from flotilla.store.sql import SqlStore
from flotilla.store.workflow_sql import WorkflowStore  # registers the workflow tables

__all__ = [
    "HistoryRow",
    "PromptRow",
    "PromptStatus",
    "SqlStore",
    "StaleState",
    "Store",
    "StoreUnavailable",
    "WorkflowStore",
    "open_store",
]


def open_store(url: str) -> SqlStore:
    """Open the store at `url`, migrated to head. UsageError for a bad URL."""
    sa_url = parse_store_url(url)
    engine = make_engine(sa_url)
    try:
        upgrade_to_head(engine)
    except OperationalError as exc:
        engine.dispose()
        raise StoreUnavailable(f"cannot open the store at {redact(sa_url)}: {exc.orig}") from exc
    except BaseException:
        engine.dispose()
        raise
    return SqlStore(engine)
