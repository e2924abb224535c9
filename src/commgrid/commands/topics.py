"""`commgrid topic …`, `commgrid publish` and `commgrid events …`: custom topics and what was published to them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from commgrid.commands.common import (
    DEFAULT_DIR,
    DataDir,
    JsonFlag,
    StoreUrl,
    console,
    fail,
    print_json,
    run,
    run_with,
    settings_for,
)
from commgrid.config import Settings
from commgrid.console.journey import journey, journey_lines
from commgrid.errors import CommgridError, NotFound
from commgrid.events.envelope import parse_json_array, schema_from_cli
from commgrid.grid.topic_options import EXTENSION, TopicOptions, parse_options
from commgrid.store.base import EventQuery, StoredEvent, Topic

if TYPE_CHECKING:
    from commgrid.runtime import Runtime

topic_app = typer.Typer(help="Custom topics.", no_args_is_help=True)
events_app = typer.Typer(help="Events stored in a topic (newest first).", no_args_is_help=True)


def topic_json(topic: Topic, settings: Settings) -> dict[str, Any]:
    path = f"/topics/{topic.name}/api/events"
    shown = {"name": topic.name, "armId": topic.arm_id, "inputSchema": topic.input_schema, "kind": topic.kind,
             "endpoint": settings.https_base + path, "httpEndpoint": settings.http_base + path,
             "key1": topic.key1, "key2": topic.key2}
    options = topic.options.to_json()
    return shown | ({EXTENSION: options} if options else {})


Retention = Annotated[int | None, typer.Option(
    "--retention-minutes", help="Keep events and dead letters this long (default 1500: the longest event TTL"
                                " plus an hour); 0 restores the default.")]
Dedupe = Annotated[int | None, typer.Option(
    "--dedupe-window-minutes", help="Drop an event whose id the topic accepted this recently (default: off);"
                                    " 0 turns it off.")]


def _options(retention: int | None, dedupe: int | None) -> dict[str, int | None]:
    """The options the flags set (0 unsets one), checked as the management API checks them."""
    given = {"retentionMinutes": retention, "dedupeWindowMinutes": dedupe}
    try:
        return parse_options({k: v or None for k, v in given.items() if v is not None})
    except CommgridError as exc:
        raise fail(exc, exit_code=2) from None


# --------------------------------------------------------------------------------------------------
def _topic_table(topics: list[dict[str, Any]]) -> Table:
    table = Table("name", "input schema", "endpoint")
    for t in topics:
        table.add_row(t["name"], t["inputSchema"], t["endpoint"])
    return table


@topic_app.command("create")
def topic_create(
    name: str,
    input_schema: Annotated[str, typer.Option(help="eventgridschema or cloudeventschemav1_0")] = "eventgridschema",
    retention: Retention = None, dedupe: Dedupe = None,
    data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None, as_json: JsonFlag = False,
) -> None:
    """Create a custom topic with two new keys."""
    settings = settings_for(data_dir, store)
    try:
        schema = schema_from_cli(input_schema)
    except CommgridError as exc:
        raise fail(exc, exit_code=2) from None
    options = TopicOptions().merged(_options(retention, dedupe))
    topic = run_with(settings, lambda r: r.grid.create_topic(name, schema, options=options))
    shown = topic_json(topic, settings)
    print_json(shown) if as_json else console.print(_topic_table([shown]))


@topic_app.command("update")
def topic_update(
    name: Annotated[str, typer.Argument(help="A custom topic, or the system topic (the ACS resource name).")],
    retention: Retention = None, dedupe: Dedupe = None,
    data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None,
) -> None:
    """Change a topic's commgrid options; print the topic as JSON."""
    settings = settings_for(data_dir, store)
    options = _options(retention, dedupe)
    print_json(topic_json(run_with(settings, lambda r: r.grid.update_topic(name, options=options)), settings))


@topic_app.command("list")
def topic_list(data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None, as_json: JsonFlag = False) -> None:
    """List custom topics."""
    settings = settings_for(data_dir, store)
    topics = [topic_json(t, settings) for t in run_with(settings, lambda r: r.grid.list_topics()) if t.kind == "custom"]
    print_json(topics) if as_json else console.print(_topic_table(topics))


@topic_app.command("show")
def topic_show(name: str, data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None) -> None:
    """Show one topic as JSON, keys included."""
    settings = settings_for(data_dir, store)
    print_json(topic_json(run_with(settings, lambda r: r.grid.get_topic(name)), settings))


@topic_app.command("delete")
def topic_delete(name: str, data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None) -> None:
    """Delete a topic with its subscriptions and events."""
    run(data_dir, store, lambda r: r.grid.delete_topic(name))
    console.print(f"deleted topic {name}")


@topic_app.command("keys")
def topic_keys(name: str, data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None) -> None:
    """Print a topic's key1 and key2 as JSON."""
    topic = run(data_dir, store, lambda r: r.grid.get_topic(name))
    print_json({"key1": topic.key1, "key2": topic.key2})


@topic_app.command("regenerate-key")
def topic_regenerate_key(
    name: str, key_name: Annotated[str, typer.Option("--key-name", help="key1 or key2")] = "key1",
    data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None,
) -> None:
    """Replace key1 or key2 with a new key; print both keys as JSON."""
    topic = run(data_dir, store, lambda r: r.grid.regenerate_key(name, key_name))
    print_json({"key1": topic.key1, "key2": topic.key2})


# publish and events --------------------------------------------------------------------------------------
def publish(
    topic: Annotated[str, typer.Option("--topic", help="Topic name.")],
    file: Annotated[Path, typer.Option("--file", help="JSON file: an array of events, or one CloudEvent.")],
    data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None,
) -> None:
    """Publish events from a file through the same path as the HTTP endpoint (no key needed)."""
    body = file.read_bytes()

    async def go(runtime: Runtime) -> int:
        t = await runtime.grid.get_topic(topic)
        content_type = "application/cloudevents+json" if t.input_schema.startswith("Cloud") else "application/json"
        events = parse_json_array(body, content_type)
        await runtime.grid.publish(t, events)
        return len(events)

    count = run(data_dir, store, go)
    console.print(f"published {count} event(s) to {topic}")


def event_json(e: StoredEvent) -> dict[str, Any]:
    return {"seq": e.seq, "id": e.id, "type": e.type, "subject": e.subject, "time": e.time,
            "event": json.loads(e.body)}


@events_app.command("list")
def events_list(
    topic: Annotated[str, typer.Option("--topic")],
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    wide: Annotated[bool, typer.Option("--wide", help="Never shorten ids and subjects.")] = False,
    data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None, as_json: JsonFlag = False,
) -> None:
    """Recent events of a topic: id, type, subject, time (`events show` takes an id's first characters)."""
    events = run(data_dir, store, lambda r: r.grid.list_events(topic, limit))
    if as_json:
        print_json([event_json(e) for e in events])
        return
    table = Table("id", "type", "subject", "time")
    if wide:
        for column in table.columns:
            column.no_wrap, column.overflow = True, "ignore"
        console.width = max(console.width, 250)
    for e in events:
        table.add_row(e.id, e.type, e.subject, e.time)
    console.print(table)


@events_app.command("show")
def events_show(
    event_id: Annotated[str, typer.Argument(help="The event's id (with --topic, its first characters are enough).")],
    topic: Annotated[str | None, typer.Option("--topic", help="Default: any topic.")] = None,
    data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None, as_json: JsonFlag = False,
) -> None:
    """One stored event and its journey: each subscription's delivery attempts, or why it did not match."""

    async def go(runtime: Runtime) -> tuple[StoredEvent, dict[str, Any]]:
        name = (await runtime.grid.get_topic(topic)).name if topic else None
        found = await runtime.store.search_events(EventQuery(topic=name, id=event_id), limit=1)
        if not found and name:
            found = [await runtime.grid.find_event(name, event_id)]  # an id prefix, as `events list` shows them
        if not found:
            raise NotFound(f"Event '{event_id}' was not found" + (f" in topic '{name}'." if name else "."))
        return found[0], await journey(runtime.store, found[0])

    event, path = run(data_dir, store, go)
    if as_json:
        print_json(event_json(event) | {"topic": event.topic, "journey": path["subscriptions"]})
        return
    for line in journey_lines(path):
        console.print(line, highlight=False, soft_wrap=True, markup=False)
