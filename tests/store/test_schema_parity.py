"""Both backends define the same tables with the same columns once their migrations have run."""

from __future__ import annotations

import aiosqlite
import asyncpg

from commgrid.store import console_sql, postgres, sqlite, store_from_url
from commgrid.store.base import EventQuery


async def _sqlite_columns(url: str) -> dict[str, set[str]]:
    async with aiosqlite.connect(url.removeprefix("sqlite:///")) as db:
        tables = [r[0] for r in await db.execute_fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: {r[1] for r in await db.execute_fetchall(f"PRAGMA table_info({t})")} for t in tables}


async def _postgres_columns(url: str) -> dict[str, set[str]]:
    conn = await asyncpg.connect(url)
    try:
        found: dict[str, set[str]] = {}
        for r in await conn.fetch("SELECT table_name, column_name FROM information_schema.columns"
                                  " WHERE table_schema = 'public'"):
            found.setdefault(r["table_name"], set()).add(r["column_name"])
        return found
    finally:
        await conn.close()


async def test_sqlite_and_postgresql_define_the_same_schema(sqlite_url: str, postgres_url: str) -> None:
    for url in (sqlite_url, postgres_url):
        store = store_from_url(url)
        await store.open()
        await store.close()
    sqlite, postgres = await _sqlite_columns(sqlite_url), await _postgres_columns(postgres_url)
    assert sorted(sqlite) == sorted(postgres)
    for table, columns in sqlite.items():
        assert columns == postgres[table], table


async def test_both_backends_index_stored_events_by_topic_and_id(sqlite_url: str, postgres_url: str) -> None:
    """Each topic's sequence is indexed alike; event ids are indexed on PostgreSQL as they are and on SQLite per
    block of sequence numbers (`events_id_block`), which its lookups by id probe block by block."""
    for url in (sqlite_url, postgres_url):
        store = store_from_url(url)
        await store.open()
        await store.close()
    async with aiosqlite.connect(sqlite_url.removeprefix("sqlite:///")) as db:
        lite = {r[0] for r in await db.execute_fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' AND sql IS NOT NULL")}
        plans = [[str(r[-1]) for r in await db.execute_fetchall(f"EXPLAIN QUERY PLAN {sql}", args)]
                 for sql, args in ((sqlite.GET_EVENT, ("id", "topic")), _search_by_id())]
    conn = await asyncpg.connect(postgres_url)
    try:
        pg = {r[0] for r in await conn.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'events'")}
        pg_plan = " ".join(r[0] for r in await conn.fetch(f"EXPLAIN {postgres.GET_EVENT}", "topic", "id"))
    finally:
        await conn.close()
    assert lite == {"events_id_block", "events_topic_seq"}
    assert pg - {"events_pkey"} == {"events_id", "events_topic_seq"}
    for plan in plans:
        assert "SEARCH i USING COVERING INDEX events_id_block (<expr>=? AND id=?)" in plan
        assert not [step for step in plan if step.split()[:2] in (["SCAN", "e"], ["SCAN", "i"])]  # no table scan
    assert "events_id" in pg_plan


def _search_by_id() -> tuple[str, tuple]:
    sql, args = console_sql.search_sql(EventQuery(id="id"), 50, "?", id_clause=sqlite.id_clause)
    return sqlite.ID_BLOCKS + sql, args
