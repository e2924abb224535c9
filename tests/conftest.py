"""Shared fixtures: a store of each backend, and a fresh PostgreSQL database per test.

PostgreSQL must be reachable (COMMGRID_TEST_POSTGRES_URL, default the local server): tests that need it
fail, never skip, when it is not.
"""

from __future__ import annotations

import compileall
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

import commgrid
from commgrid.store import Store, store_from_url

POSTGRES_URL = os.environ.get("COMMGRID_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile commgrid's modules once: every server and CLI process the tests start then reads bytecode instead
    of compiling the package again (as it would under PYTHONDONTWRITEBYTECODE, or from a read-only checkout)."""
    if not hasattr(session.config, "workerinput"):  # once, in the controlling process
        compileall.compile_dir(os.path.dirname(commgrid.__file__), quiet=1)


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"commgrid_t_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(POSTGRES_URL)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is required at {POSTGRES_URL} and is unreachable: {exc}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield _with_database(POSTGRES_URL, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def sqlite_url(tmp_path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'commgrid.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request) -> str:
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    s = store_from_url(store_url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()
