"""`commgrid subscription …` and `commgrid deadletter …`: event subscriptions and their dead letters.

Flag names follow `az eventgrid event-subscription create/update`. Flags that take several words in az take
one quoted string here: `--advanced-filter "data.key NumberGreaterThan 5"`, `--advanced-filter "data.city
StringIn Paris 'New York'"`, `--advanced-filter "data.n NumberInRange 1,5 10,20"`,
`--delivery-attribute-mapping "X-Tenant static contoso"`, `--delivery-attribute-mapping "X-Kind dynamic
data.kind"` (a fourth word `true` marks a static value secret).

Like the other commands, these act on the data dir's store directly, with or without a running server;
the validation handshake is done by this process and its validation URL is served by `commgrid serve`.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.table import Table

from commgrid.commands.common import DEFAULT_DIR, DataDir, JsonFlag, StoreUrl, console, err, print_json, run
from commgrid.events.envelope import CLOUDEVENTS, EVENTGRID
from commgrid.grid.deadletter import LOCAL_DIRECTORY, STORAGE_BLOB
from commgrid.grid.properties import ACTIVE, AWAITING, FAILED
from commgrid.store.base import DeadLetter, Subscription
from commgrid.timestamps import azure_time

if TYPE_CHECKING:
    from commgrid.grid.subscriptions import Saved
    from commgrid.runtime import Runtime

subscription_app = typer.Typer(help="Event subscriptions: filters, webhook delivery, retries.", no_args_is_help=True)
deadletter_app = typer.Typer(help="Events that could not be delivered.", no_args_is_help=True)

TopicName = Annotated[str, typer.Option("--topic", help="Topic name (the system topic is the ACS resource name).")]
SubName = Annotated[str, typer.Option("--name", "-n", help="Event subscription name.")]

# Optional flags shared by create and update.
Types = Annotated[list[str] | None, typer.Option("--included-event-types",
                                                 help="Event types (repeat, or space-separated).")]
Begins = Annotated[str | None, typer.Option("--subject-begins-with")]
Ends = Annotated[str | None, typer.Option("--subject-ends-with")]
CaseSensitive = Annotated[bool | None, typer.Option("--subject-case-sensitive/--subject-case-insensitive")]
Advanced = Annotated[list[str] | None, typer.Option("--advanced-filter", help='"KEY OPERATOR [VALUE ...]" (repeat).')]
Arrays = Annotated[bool | None, typer.Option(
    "--enable-advanced-filtering-on-arrays/--disable-advanced-filtering-on-arrays")]
Schema = Annotated[str | None, typer.Option("--event-delivery-schema", help="eventgridschema or cloudeventschemav1_0")]
Attempts = Annotated[int | None, typer.Option("--max-delivery-attempts", help="1-30 (default 30).")]
Ttl = Annotated[int | None, typer.Option("--event-ttl", help="Event time to live in minutes, 1-1440 (default 1440).")]
BatchEvents = Annotated[int | None, typer.Option("--max-events-per-batch", help="1-5000 (default 1).")]
BatchKb = Annotated[int | None, typer.Option("--preferred-batch-size-in-kilobytes", help="1-1024 (default 64).")]
Mappings = Annotated[list[str] | None, typer.Option(
    "--delivery-attribute-mapping", help='"NAME static VALUE [true]" or "NAME dynamic FIELD" (repeat).')]
DeadDir = Annotated[Path | None, typer.Option("--deadletter-dir",
                                              help="Write dead-lettered events as JSON files here.")]
DeadBlob = Annotated[str | None, typer.Option(
    "--deadletter-endpoint", help="Storage container id …/storageAccounts/A/blobServices/default/containers/C.")]
Expires = Annotated[str | None, typer.Option("--expiration-date", help="UTC date or date-time after which it expires.")]
Labels = Annotated[list[str] | None, typer.Option("--labels", help="Labels (repeat, or space-separated).")]

_SINGLE = ("NumberLessThan", "NumberGreaterThan", "NumberLessThanOrEquals", "NumberGreaterThanOrEquals", "BoolEquals")
_NO_VALUE = ("IsNullOrUndefined", "IsNotNull")
_RANGES = ("NumberInRange", "NumberNotInRange")
_NUMBERS = ("NumberIn", "NumberNotIn")
_STRINGS = ("StringIn", "StringNotIn", "StringBeginsWith", "StringNotBeginsWith", "StringEndsWith",
            "StringNotEndsWith", "StringContains", "StringNotContains")
_OPERATORS = {op.lower(): op for op in (*_SINGLE, *_NO_VALUE, *_RANGES, *_NUMBERS, *_STRINGS)}


# ------------------------------------------------------------------------------------------------------------
# Helpers


def _words(values: list[str] | None) -> list[str] | None:
    return None if values is None else [w for v in values for w in v.split()]


def _number(text: str) -> int | float:
    try:
        return int(text)  # exactly as written: float() would round 18446744073709551615 up
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise typer.BadParameter(f"'{text}' is not a number.") from None


def parse_advanced_filter(text: str) -> dict[str, Any]:
    """`"data.key NumberGreaterThan 5"` → `{"operatorType": ..., "key": ..., "value": 5}` (az's word order)."""
    words = shlex.split(text)
    if len(words) < 2:
        raise typer.BadParameter(f"'{text}': expected KEY OPERATOR [VALUE ...].")
    key, given, values = words[0], words[1], words[2:]
    op = _OPERATORS.get(given.lower(), given)
    entry: dict[str, Any] = {"operatorType": op, "key": key}
    if op in _NO_VALUE:
        return entry
    if op in _SINGLE:
        if len(values) != 1:
            raise typer.BadParameter(f"'{text}': {op} takes exactly one value.")
        if op == "BoolEquals":
            if values[0].lower() not in ("true", "false"):
                raise typer.BadParameter(f"'{text}': BoolEquals takes true or false.")
            entry["value"] = values[0].lower() == "true"
        else:
            entry["value"] = _number(values[0])
    elif op in _RANGES:
        pairs = [v.split(",") for v in values]
        if any(len(p) != 2 for p in pairs):
            raise typer.BadParameter(f"'{text}': ranges are written LOW,HIGH.")
        entry["values"] = [[_number(low), _number(high)] for low, high in pairs]
    elif op in _NUMBERS:
        entry["values"] = [_number(v) for v in values]
    else:
        entry["values"] = values
    return entry


def parse_attribute_mapping(text: str) -> dict[str, Any]:
    """`"NAME static VALUE [true]"` or `"NAME dynamic data.field"` → a deliveryAttributeMapping."""
    words = shlex.split(text)
    if len(words) < 3:
        raise typer.BadParameter(f"'{text}': expected NAME static VALUE [true] or NAME dynamic FIELD.")
    name, kind = words[0], words[1].lower()
    if kind == "static":
        secret = len(words) > 3 and words[3].lower() == "true"
        return {"name": name, "type": "Static", "properties": {"value": words[2], "isSecret": secret}}
    if kind == "dynamic":
        return {"name": name, "type": "Dynamic", "properties": {"sourceField": words[2]}}
    raise typer.BadParameter(f"'{text}': the type must be static or dynamic.")


def storage_dead_letter(container_id: str) -> dict[str, Any]:
    """az's `--deadletter-endpoint` (a blob container id) → a StorageBlob deadLetterDestination."""
    head, sep, container = container_id.partition("/blobServices/default/containers/")
    if not sep or not container:
        raise typer.BadParameter("--deadletter-endpoint must look like"
                                 " /subscriptions/…/storageAccounts/ACCOUNT/blobServices/default/containers/NAME.")
    return {"endpointType": STORAGE_BLOB, "properties": {"resourceId": head, "blobContainerName": container}}


def _schema(value: str | None) -> str | None:
    if value is None:
        return None
    for schema in (EVENTGRID, CLOUDEVENTS):
        if value.lower() == schema.lower():
            return schema
    return value  # rejected, with the choices, by the service


def _changes(
    current: dict[str, Any], *, endpoint: str | None, types: list[str] | None, begins: str | None,
    ends: str | None, case_sensitive: bool | None, advanced: list[str] | None, arrays: bool | None,
    schema: str | None, attempts: int | None, ttl: int | None, batch_events: int | None, batch_kb: int | None,
    mappings: list[str] | None, dead_dir: Path | None, dead_blob: str | None, expires: str | None,
    labels: list[str] | None,
) -> dict[str, Any]:
    """ARM properties to replace, built from the flags given on top of `current` (empty for create)."""
    changes: dict[str, Any] = {}
    dest = {"endpointUrl": endpoint, "maxEventsPerBatch": batch_events, "preferredBatchSizeInKilobytes": batch_kb,
            "deliveryAttributeMappings": [parse_attribute_mapping(m) for m in mappings] if mappings else None}
    if any(v is not None for v in dest.values()):
        base = dict(current.get("destination", {}).get("properties", {}))
        changes["destination"] = {"endpointType": "WebHook",
                                  "properties": {**base, **{k: v for k, v in dest.items() if v is not None}}}
    filt = {"includedEventTypes": _words(types), "subjectBeginsWith": begins, "subjectEndsWith": ends,
            "isSubjectCaseSensitive": case_sensitive, "enableAdvancedFilteringOnArrays": arrays,
            "advancedFilters": [parse_advanced_filter(a) for a in advanced] if advanced else None}
    if any(v is not None for v in filt.values()):
        changes["filter"] = {**current.get("filter", {}), **{k: v for k, v in filt.items() if v is not None}}
    retry = {"maxDeliveryAttempts": attempts, "eventTimeToLiveInMinutes": ttl}
    if any(v is not None for v in retry.values()):
        changes["retryPolicy"] = {**current.get("retryPolicy", {}), **{k: v for k, v in retry.items() if v is not None}}
    if dead_dir is not None:
        changes["deadLetterDestination"] = {"endpointType": LOCAL_DIRECTORY,
                                            "properties": {"path": str(dead_dir.expanduser().resolve())}}
    elif dead_blob is not None:
        changes["deadLetterDestination"] = storage_dead_letter(dead_blob)
    for key, value in (("eventDeliverySchema", _schema(schema)), ("expirationTimeUtc", expires),
                       ("labels", _words(labels))):
        if value is not None:
            changes[key] = value
    return changes


async def _describe(runtime: Runtime, sub: Subscription, *, full_url: bool = False) -> dict[str, Any]:
    """The ARM resource, plus commgrid's word on why it is (not) getting events."""
    topic = await runtime.grid.get_topic(sub.topic)
    shown = runtime.subscriptions.render(sub, topic)
    if full_url:
        shown["properties"]["destination"]["properties"]["endpointUrl"] = sub.properties.endpoint_url
    shown["commgrid"] = await runtime.subscriptions.status(sub)
    return shown


def _report(saved_and_shown: tuple[Saved, dict[str, Any]], verb: str, as_json: bool) -> None:
    saved, shown = saved_and_shown
    shown["commgrid"]["warnings"] = saved.warnings
    for warning in saved.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)
    sub = saved.subscription
    if as_json:
        print_json(shown)
    elif sub.status == ACTIVE:
        console.print(f"{verb} event subscription {sub.name} on {sub.topic}: Succeeded", highlight=False)
    elif sub.status == AWAITING:
        console.print(f"{verb} event subscription {sub.name} on {sub.topic}: AwaitingManualAction\n"
                      f"  {saved.message}\n  validation URL: {shown['commgrid'].get('validationUrl')}",
                      highlight=False, soft_wrap=True)
    if sub.status == FAILED:
        err.print(f"[red]error:[/red] {saved.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


# ------------------------------------------------------------------------------------------------------------
# subscription


@subscription_app.command("create")
def create(
    topic: TopicName, name: SubName,
    endpoint: Annotated[str, typer.Option("--endpoint", help="Webhook URL (its query string stays secret).")],
    included_event_types: Types = None, subject_begins_with: Begins = None, subject_ends_with: Ends = None,
    subject_case_sensitive: CaseSensitive = None, advanced_filter: Advanced = None,
    enable_advanced_filtering_on_arrays: Arrays = None, event_delivery_schema: Schema = None,
    max_delivery_attempts: Attempts = None, event_ttl: Ttl = None, max_events_per_batch: BatchEvents = None,
    preferred_batch_size_in_kilobytes: BatchKb = None, delivery_attribute_mapping: Mappings = None,
    deadletter_dir: DeadDir = None, deadletter_endpoint: DeadBlob = None, expiration_date: Expires = None,
    labels: Labels = None, data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None, as_json: JsonFlag = False,
) -> None:
    """Create an event subscription and validate its webhook (waits for the handshake's outcome)."""
    properties = _changes(
        {}, endpoint=endpoint, types=included_event_types, begins=subject_begins_with, ends=subject_ends_with,
        case_sensitive=subject_case_sensitive, advanced=advanced_filter, arrays=enable_advanced_filtering_on_arrays,
        schema=event_delivery_schema, attempts=max_delivery_attempts, ttl=event_ttl,
        batch_events=max_events_per_batch, batch_kb=preferred_batch_size_in_kilobytes,
        mappings=delivery_attribute_mapping, dead_dir=deadletter_dir, dead_blob=deadletter_endpoint,
        expires=expiration_date, labels=labels)

    async def go(runtime: Runtime) -> tuple[Saved, dict[str, Any]]:
        saved = await runtime.subscriptions.create(topic, name, properties)
        return saved, await _describe(runtime, saved.subscription)

    _report(run(data_dir, store, go), "created", as_json)


@subscription_app.command("update")
def update(
    topic: TopicName, name: SubName,
    endpoint: Annotated[str | None, typer.Option("--endpoint", help="New webhook URL (validated again).")] = None,
    included_event_types: Types = None, subject_begins_with: Begins = None, subject_ends_with: Ends = None,
    subject_case_sensitive: CaseSensitive = None, advanced_filter: Advanced = None,
    enable_advanced_filtering_on_arrays: Arrays = None, event_delivery_schema: Schema = None,
    max_delivery_attempts: Attempts = None, event_ttl: Ttl = None, max_events_per_batch: BatchEvents = None,
    preferred_batch_size_in_kilobytes: BatchKb = None, delivery_attribute_mapping: Mappings = None,
    deadletter_dir: DeadDir = None, deadletter_endpoint: DeadBlob = None, expiration_date: Expires = None,
    labels: Labels = None, data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None, as_json: JsonFlag = False,
) -> None:
    """Change an event subscription; only the flags given change (advanced filters are replaced as a whole)."""

    async def go(runtime: Runtime) -> tuple[Saved, dict[str, Any]]:
        current = await runtime.subscriptions.get(topic, name)
        changes = _changes(
            current.properties.to_arm(), endpoint=endpoint, types=included_event_types, begins=subject_begins_with,
            ends=subject_ends_with, case_sensitive=subject_case_sensitive, advanced=advanced_filter,
            arrays=enable_advanced_filtering_on_arrays, schema=event_delivery_schema,
            attempts=max_delivery_attempts, ttl=event_ttl, batch_events=max_events_per_batch,
            batch_kb=preferred_batch_size_in_kilobytes, mappings=delivery_attribute_mapping,
            dead_dir=deadletter_dir, dead_blob=deadletter_endpoint, expires=expiration_date, labels=labels)
        saved = await runtime.subscriptions.update(topic, name, changes)
        return saved, await _describe(runtime, saved.subscription)

    _report(run(data_dir, store, go), "updated", as_json)


@subscription_app.command("show")
def show(
    topic: TopicName, name: SubName,
    include_full_endpoint_url: Annotated[bool, typer.Option("--include-full-endpoint-url")] = False,
    data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None,
) -> None:
    """One event subscription as its ARM resource, with commgrid's `status` (why it is or is not delivered to)."""

    async def go(runtime: Runtime) -> dict[str, Any]:
        return await _describe(runtime, await runtime.subscriptions.get(topic, name),
                               full_url=include_full_endpoint_url)

    print_json(run(data_dir, store, go))


@subscription_app.command("list")
def list_(
    topic: Annotated[str | None, typer.Option("--topic", help="Only this topic's subscriptions.")] = None,
    data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None, as_json: JsonFlag = False,
) -> None:
    """Event subscriptions with their state and endpoint."""

    async def go(runtime: Runtime) -> list[dict[str, Any]]:
        return [await _describe(runtime, s) for s in await runtime.subscriptions.list(topic)]

    shown = run(data_dir, store, go)
    if as_json:
        print_json(shown)
        return
    table = Table("topic", "name", "state", "endpoint", "schema")
    for s in shown:
        p = s["properties"]
        table.add_row(p["topic"].rsplit("/", 1)[-1], s["name"], p["provisioningState"],
                      p["destination"]["properties"]["endpointBaseUrl"], p["eventDeliverySchema"])
    console.print(table)


@subscription_app.command("delete")
def delete(topic: TopicName, name: SubName, data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None) -> None:
    """Delete an event subscription and its pending deliveries (dead letters are kept)."""
    run(data_dir, store, lambda r: r.subscriptions.delete(topic, name))
    console.print(f"deleted event subscription {name}", highlight=False)


@subscription_app.command("test")
def test(
    topic: TopicName, name: SubName,
    event: Annotated[Path | None, typer.Option(
        "--event", help="JSON file: one event, an array of events, or `commgrid events show` output.")] = None,
    event_id: Annotated[str | None, typer.Option("--event-id", help="A stored event of the topic (or an id prefix).")
                        ] = None,
    data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None,
) -> None:
    """Say whether events pass the subscription's filter and, if not, which clause rejects them (exit 1)."""
    if (event is None) == (event_id is None):
        raise typer.BadParameter("give --event FILE or --event-id ID (one of them).")
    events = _events_in_file(event) if event is not None else []

    async def go(runtime: Runtime) -> tuple[Subscription, list[dict[str, Any]], list[str | None]]:
        sub = await runtime.subscriptions.get(topic, name)
        tried = events or [orjson.loads((await runtime.grid.find_event(topic, event_id or "")).body)]
        return sub, tried, [await runtime.subscriptions.explain(topic, name, e) for e in tried]

    sub, events, reasons = run(data_dir, store, go)
    for e, reason in zip(events, reasons, strict=True):
        label = e.get("id", "?") if isinstance(e, dict) else "?"
        if reason is None:
            console.print(f"event {label}: matches {sub.name}", highlight=False)
        else:
            console.print(f"event {label}: does not match {sub.name}: {reason}", highlight=False, soft_wrap=True)
    if sub.status != ACTIVE:
        err.print(f"note: {sub.name} is {sub.status}; it gets no events until it is validated.", highlight=False)
    if any(r is not None for r in reasons):
        raise typer.Exit(1)


# ------------------------------------------------------------------------------------------------------------
# deadletter


def _events_in_file(path: Path) -> list[dict[str, Any]]:
    try:
        parsed = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}") from None
    items = parsed if isinstance(parsed, list) else [parsed]
    # `commgrid events show` (and `events list --json`) wrap each event with what the store knows of it
    return [e["event"] if isinstance(e, dict) and isinstance(e.get("event"), dict) and "seq" in e else e
            for e in items]


def _letter_json(record: DeadLetter, event: dict[str, Any]) -> dict[str, Any]:
    return {"id": record.id, "topic": record.topic, "subscription": record.subscription,
            "deadLetteredAt": azure_time(record.dead_lettered_at), "event": event}


@deadletter_app.command("list")
def deadletter_list(
    topic: Annotated[str | None, typer.Option("--topic")] = None,
    subscription: Annotated[str | None, typer.Option("--subscription", "--name", "-n")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 100,
    data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None, as_json: JsonFlag = False,
) -> None:
    """Dead-lettered events, newest first."""

    async def go(runtime: Runtime) -> list[dict[str, Any]]:
        records = await runtime.subscriptions.dead_letters(topic, subscription, limit)
        return [_letter_json(r, await runtime.subscriptions.render_dead_letter(r)) for r in records]

    shown = run(data_dir, store, go)
    if as_json:
        print_json(shown)
        return
    table = Table("id", "topic", "subscription", "event id", "reason", "attempts", "last outcome", "status")
    for x in shown:
        e = x["event"]
        reason = e.get("deadLetterReason", e.get("deadletterreason"))
        attempts = e.get("deliveryAttempts", e.get("deliveryattempts"))
        outcome = e.get("lastDeliveryOutcome", e.get("lastdeliveryoutcome"))
        status = e.get("lastHttpStatusCode", e.get("lasthttpstatuscode"))
        table.add_row(str(x["id"]), x["topic"], x["subscription"], str(e.get("id")), reason, str(attempts),
                      str(outcome or ""), str(status or ""))
    console.print(table)


@deadletter_app.command("show")
def deadletter_show(dead_letter_id: int, data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None) -> None:
    """One dead letter: the event as Event Grid writes it to the dead-letter container."""

    async def go(runtime: Runtime) -> dict[str, Any]:
        record = await runtime.subscriptions.dead_letter(dead_letter_id)
        return _letter_json(record, await runtime.subscriptions.render_dead_letter(record))

    print_json(run(data_dir, store, go))


@deadletter_app.command("redeliver")
def deadletter_redeliver(
    ids: Annotated[list[int] | None, typer.Argument(help="Dead-letter ids.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every dead letter of --topic (and --subscription).")] = False,
    topic: Annotated[str | None, typer.Option("--topic")] = None,
    subscription: Annotated[str | None, typer.Option("--subscription", "--name", "-n")] = None,
    data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None,
) -> None:
    """Deliver dead-lettered events again, from a first attempt (a running server picks them up)."""
    if not ids and not all_:
        raise typer.BadParameter("give dead-letter ids, or --all with --topic")

    async def go(runtime: Runtime) -> tuple[int, int]:
        given = await runtime.subscriptions.redeliver(list(ids or [])) if ids else 0
        rest = 0
        if all_:
            records = await runtime.subscriptions.dead_letters(topic, subscription, limit=1_000_000)
            rest = await runtime.subscriptions.redeliver([r.id for r in records])
        return given, rest

    given, rest = run(data_dir, store, go)
    console.print(f"redelivering {given + rest} event(s)", highlight=False)
    if ids and given < len(ids):
        err.print(f"[red]error:[/red] {len(ids) - given} of the {len(ids)} dead-letter ids given were not found"
                  " (`commgrid deadletter list` shows them).", highlight=False)
        raise typer.Exit(1)
