"""Alembic migrations of the kpisync store, run by ``connectors.store.Store.migrate``."""
