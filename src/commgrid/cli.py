"""The `commgrid` command line: run the server and manage a data dir's topics and events.

Commands act on the data dir's store directly, so they work whether or not a server is running.
Options fall back to `COMMGRID_*` environment variables; nothing below this module reads the environment.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table

from commgrid import __version__
from commgrid.acs.phone_numbers import number_kind
from commgrid.commands.phone_numbers import phone_number_app
from commgrid.commands.sms import sms_app
from commgrid.commands.subscriptions import deadletter_app, subscription_app
from commgrid.config import Settings
from commgrid.errors import CommgridError
from commgrid.events.acs import profile_by_name
from commgrid.events.envelope import parse_json_array, schema_from_cli
from commgrid.runtime import Runtime
from commgrid.store.base import StoredEvent, Topic
from commgrid.tls import tls_files

app = typer.Typer(help="commgrid: Azure Event Grid and Communication Services on your machine.",
                  no_args_is_help=True, add_completion=False)
topic_app = typer.Typer(help="Custom topics.", no_args_is_help=True)
events_app = typer.Typer(help="Events stored in a topic (newest first).", no_args_is_help=True)
app.add_typer(topic_app, name="topic")
app.add_typer(events_app, name="events")
app.add_typer(subscription_app, name="subscription")
app.add_typer(deadletter_app, name="deadletter")
app.add_typer(phone_number_app, name="phone-number")
app.add_typer(sms_app, name="sms")

console = Console()
err = Console(stderr=True)
T = TypeVar("T")

DataDir = Annotated[Path, typer.Option("--data-dir", envvar="COMMGRID_DATA_DIR", help="Data directory.")]
StoreUrl = Annotated[str | None, typer.Option("--store", envvar="COMMGRID_STORE",
                                              help="Store URL: sqlite:///path or postgresql://…")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
DEFAULT_DIR = Path(".commgrid")


def settings_for(data_dir: Path, store: str | None = None, **overrides: Any) -> Settings:
    return Settings.for_data_dir(data_dir, store_url=store, **overrides)


def run(settings: Settings, action: Callable[[Runtime], Awaitable[T]]) -> T:
    """Open the data dir's store, run `action`, close; domain errors become a message and exit code 1."""

    async def main() -> T:
        async with Runtime(settings) as runtime:
            return await action(runtime)

    try:
        return asyncio.run(main())
    except CommgridError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


# serve ---------------------------------------------------------------------------------------------------
@app.command()
def serve(
    data_dir: DataDir = DEFAULT_DIR,
    host: Annotated[str, typer.Option(envvar="COMMGRID_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="COMMGRID_PORT", help="Plain HTTP port.")] = 7070,
    tls_port: Annotated[int, typer.Option(envvar="COMMGRID_TLS_PORT", help="HTTPS port (0: none).")] = 7443,
    store: StoreUrl = None,
    resource_name: Annotated[
        str, typer.Option(envvar="COMMGRID_RESOURCE_NAME", help="Communication Services resource name (first start).")
    ] = "commgrid",
    time_scale: Annotated[float, typer.Option(envvar="COMMGRID_TIME_SCALE",
                                              help="Divide every delivery delay by this factor.")] = 1.0,
    event_profile: Annotated[str | None, typer.Option(
        envvar="COMMGRID_EVENT_PROFILE",
        help="Communication Services event shapes: seed (the seed documents) or current (Azure today); "
             "recorded for the resource. Default: the recorded choice, else seed.")] = None,
    phone_number: Annotated[list[str] | None, typer.Option(
        "--phone-number", envvar="COMMGRID_PHONE_NUMBERS",
        help="A phone number (E.164) or short code the resource owns (repeat; env: space-separated).")] = None,
) -> None:
    """Start commgrid: HTTP and HTTPS listeners, the store, and delivery."""
    from commgrid.server import serve as run_server

    try:
        profile = profile_by_name(event_profile).name if event_profile else None
        numbers = tuple(n for n in phone_number or () if number_kind(n))
    except (ValueError, CommgridError) as exc:
        err.print(f"[red]error:[/red] {getattr(exc, 'message', exc)}")
        raise typer.Exit(2) from None
    settings = Settings(data_dir=data_dir, host=host, port=port, tls_port=tls_port, store_url=store,
                        resource_name=resource_name, time_scale=time_scale, event_profile=profile,
                        phone_numbers=numbers)

    def announce(runtime: Runtime, tls: Any) -> None:
        console.print(f"commgrid {__version__} ready", highlight=False)
        console.print(f"  HTTP   {settings.http_base}", highlight=False)
        if settings.tls_port:
            console.print(f"  HTTPS  {settings.https_base}", highlight=False)
        console.print(f"  CA     {tls.ca_cert.resolve()}", highlight=False)
        console.print(f"  store  {settings.effective_store_url}", highlight=False)
        console.print(f"  Communication Services: {runtime.deployment.connection_string(settings.https_base)}",
                      highlight=False, soft_wrap=True)

    try:
        asyncio.run(run_server(settings, announce))
    except CommgridError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None


# info ----------------------------------------------------------------------------------------------------
def _is_running(settings: Settings) -> bool:
    try:
        with urllib.request.urlopen(f"{settings.http_base}/healthz", timeout=0.5) as response:
            return response.status == 200
    except OSError:
        return False


def topic_json(topic: Topic, settings: Settings) -> dict[str, Any]:
    path = f"/topics/{topic.name}/api/events"
    return {"name": topic.name, "armId": topic.arm_id, "inputSchema": topic.input_schema, "kind": topic.kind,
            "endpoint": settings.https_base + path, "httpEndpoint": settings.http_base + path,
            "key1": topic.key1, "key2": topic.key2}


def info_json(runtime: Runtime, topics: list[Topic]) -> dict[str, Any]:
    s, d = runtime.settings, runtime.deployment
    return {
        "version": __version__,
        "dataDir": str(s.data_dir.resolve()),
        "running": _is_running(s),
        "http": s.http_base,
        "https": s.https_base,
        "caCertificate": str(tls_files(s.data_dir).ca_cert.resolve()),
        "store": s.effective_store_url,
        "communicationServices": {
            "resourceName": d.resource_name,
            "armId": d.acs_arm_id,
            "endpoint": s.https_base + "/",
            "accessKey": d.access_key,
            "connectionString": d.connection_string(s.https_base),
            "eventProfile": runtime.acs.profile.name,
            "systemTopic": {"name": d.system_topic_name, "armId": d.system_topic_arm_id, "source": d.acs_arm_id},
        },
        "topics": [topic_json(t, s) for t in topics if t.kind == "custom"],
    }


@app.command()
def info(data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None, as_json: JsonFlag = False) -> None:
    """URLs, CA path, connection string and topics of a data dir (running server or not)."""

    async def collect(runtime: Runtime) -> dict[str, Any]:
        return info_json(runtime, await runtime.grid.list_topics())

    data = run(settings_for(data_dir, store), collect)
    if as_json:
        print_json(data)
        return
    acs = data["communicationServices"]
    console.print(f"commgrid {data['version']}  ({'running' if data['running'] else 'not running'})",
                  highlight=False)
    for label, key in (("data dir", "dataDir"), ("HTTP", "http"), ("HTTPS", "https"),
                       ("CA certificate", "caCertificate"), ("store", "store")):
        console.print(f"{label:>16}: {data[key]}", highlight=False)
    console.print(f"{'connection str':>16}: {acs['connectionString']}", highlight=False, soft_wrap=True)
    console.print(f"{'ACS resource':>16}: {acs['armId']}", highlight=False, soft_wrap=True)
    console.print(f"{'system topic':>16}: {acs['systemTopic']['armId']}", highlight=False, soft_wrap=True)
    console.print(f"{'event profile':>16}: {acs['eventProfile']}", highlight=False)
    for t in data["topics"]:
        console.print(f"{'topic':>16}: {t['name']}  {t['endpoint']}  ({t['inputSchema']})", highlight=False)
        console.print(f"{'':>16}  key1={t['key1']}  key2={t['key2']}", highlight=False, soft_wrap=True)


# topics --------------------------------------------------------------------------------------------------
def _topic_table(topics: list[dict[str, Any]]) -> Table:
    table = Table("name", "input schema", "endpoint")
    for t in topics:
        table.add_row(t["name"], t["inputSchema"], t["endpoint"])
    return table


@topic_app.command("create")
def topic_create(
    name: str,
    input_schema: Annotated[str, typer.Option(help="eventgridschema or cloudeventschemav1_0")] = "eventgridschema",
    data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None, as_json: JsonFlag = False,
) -> None:
    """Create a custom topic with two new keys."""
    settings = settings_for(data_dir, store)
    try:
        schema = schema_from_cli(input_schema)
    except CommgridError as exc:
        err.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(2) from None
    topic = run(settings, lambda r: r.grid.create_topic(name, schema))
    shown = topic_json(topic, settings)
    print_json(shown) if as_json else console.print(_topic_table([shown]))


@topic_app.command("list")
def topic_list(data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None, as_json: JsonFlag = False) -> None:
    """List custom topics."""
    settings = settings_for(data_dir, store)
    topics = [topic_json(t, settings) for t in run(settings, lambda r: r.grid.list_topics()) if t.kind == "custom"]
    print_json(topics) if as_json else console.print(_topic_table(topics))


@topic_app.command("show")
def topic_show(name: str, data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None) -> None:
    """Show one topic as JSON, keys included."""
    settings = settings_for(data_dir, store)
    print_json(topic_json(run(settings, lambda r: r.grid.get_topic(name)), settings))


@topic_app.command("delete")
def topic_delete(name: str, data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None) -> None:
    """Delete a topic with its subscriptions and events."""
    run(settings_for(data_dir, store), lambda r: r.grid.delete_topic(name))
    console.print(f"deleted topic {name}")


@topic_app.command("keys")
def topic_keys(name: str, data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None) -> None:
    """Print a topic's key1 and key2 as JSON."""
    topic = run(settings_for(data_dir, store), lambda r: r.grid.get_topic(name))
    print_json({"key1": topic.key1, "key2": topic.key2})


@topic_app.command("regenerate-key")
def topic_regenerate_key(
    name: str, key_name: Annotated[str, typer.Option("--key-name", help="key1 or key2")] = "key1",
    data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None,
) -> None:
    """Replace key1 or key2 with a new key; print both keys as JSON."""
    topic = run(settings_for(data_dir, store), lambda r: r.grid.regenerate_key(name, key_name))
    print_json({"key1": topic.key1, "key2": topic.key2})


# publish and events --------------------------------------------------------------------------------------
@app.command()
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

    count = run(settings_for(data_dir, store), go)
    console.print(f"published {count} event(s) to {topic}")


def event_json(e: StoredEvent) -> dict[str, Any]:
    return {"seq": e.seq, "id": e.id, "type": e.type, "subject": e.subject, "time": e.time,
            "event": json.loads(e.body)}


@events_app.command("list")
def events_list(
    topic: Annotated[str, typer.Option("--topic")],
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None, as_json: JsonFlag = False,
) -> None:
    """Recent events of a topic: id, type, subject, time."""
    events = run(settings_for(data_dir, store), lambda r: r.grid.list_events(topic, limit))
    if as_json:
        print_json([event_json(e) for e in events])
        return
    table = Table("id", "type", "subject", "time")
    for e in events:
        table.add_row(e.id, e.type, e.subject, e.time)
    console.print(table)


@events_app.command("show")
def events_show(
    event_id: str, topic: Annotated[str, typer.Option("--topic")],
    data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None,
) -> None:
    """One stored event, as published (with the fields the topic stamped)."""
    print_json(event_json(run(settings_for(data_dir, store), lambda r: r.grid.get_event(topic, event_id))))


@app.command()
def version() -> None:
    """Print commgrid's version."""
    console.print(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
