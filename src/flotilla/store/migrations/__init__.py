"""Alembic migrations of the store, run by flotilla.store.migrate (never by hand)."""
