"""Helpers for namespace tests: resources through the CLI, the official namespace SDK clients, a PostgreSQL db."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
from azure.core.credentials import AzureKeyCredential
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridConsumerClient, EventGridPublisherClient

from tests.conftest import POSTGRES_URL, _with_database
from tests.support import ServerProcess

# Tests run the real lock schedule 60 times faster: a 60 s lock lapses after 1 s (grid/timing.py).
TIME_SCALE = "60"


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database (for module-scoped servers), dropped afterwards."""
    name = f"commgrid_ns_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(POSTGRES_URL, name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def create_queue(server: ServerProcess, namespace: str, topic: str, sub: str, *options: str) -> dict[str, Any]:
    """Namespace (if new), topic (if new) and a queue subscription, through the CLI; returns the namespace."""
    ns = json.loads(server.cli("namespace", "create", namespace, "--json").stdout)
    server.cli("namespace", "topic", "create", namespace, topic)
    server.cli("namespace", "subscription", "create", namespace, topic, sub, *options)
    server.wait_catalog()  # the CLI wrote to the store: publish once the server routes to the new subscription
    return ns


def endpoint(server: ServerProcess, namespace: str) -> str:
    return f"{server.https}/namespaces/{namespace}"


def publisher(
    server: ServerProcess, ns: dict[str, Any], topic: str, key: str | None = None
) -> EventGridPublisherClient:
    return EventGridPublisherClient(endpoint(server, ns["name"]), AzureKeyCredential(key or ns["key1"]),
                                    namespace_topic=topic, connection_verify=server.ca)


def consumer(
    server: ServerProcess, ns: dict[str, Any], topic: str, sub: str, key: str | None = None
) -> EventGridConsumerClient:
    return EventGridConsumerClient(endpoint(server, ns["name"]), AzureKeyCredential(key or ns["key1"]),
                                   namespace_topic=topic, subscription=sub, connection_verify=server.ca)


def cloud_events(count: int, kind: str = "Order.Created", **extra: Any) -> list[CloudEvent]:
    return [CloudEvent(source="/orders", type=kind, data={"n": i}, subject=f"/orders/{i}", **extra)
            for i in range(count)]


def dead_letters(server: ServerProcess, namespace: str, topic: str, sub: str) -> list[dict[str, Any]]:
    return json.loads(server.cli("namespace", "subscription", "deadletters", namespace, topic, sub).stdout)
