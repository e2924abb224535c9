"""Durable storage: one `Store` protocol, SQLite and PostgreSQL implementations, chosen by URL."""

from __future__ import annotations

from pathlib import Path

from commgrid.store.base import Store, StoreError

__all__ = ["Store", "StoreError", "store_from_url"]


def store_from_url(url: str) -> Store:
    """`sqlite:///path/to/file.db` (or a bare path) → SQLiteStore; `postgresql://…` → PostgresStore."""
    if url.startswith(("postgresql://", "postgres://")):
        from commgrid.store.postgres import PostgresStore

        return PostgresStore(url)
    from commgrid.store.sqlite import SQLiteStore

    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    return SQLiteStore(Path(path))
