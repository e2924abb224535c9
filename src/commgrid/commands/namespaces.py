"""`commgrid namespace …` (namespaces, their topics and event subscriptions) and `commgrid pull`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.table import Table

from commgrid.commands.common import (
    DEFAULT_DIR,
    DataDir,
    JsonFlag,
    StoreUrl,
    console,
    err,
    fail,
    print_json,
    run,
    settings_for,
)
from commgrid.errors import BadRequest

if TYPE_CHECKING:
    from commgrid.grid.namespaces import Namespace, NamespaceSubscription, NamespaceTopic
    from commgrid.runtime import Runtime

namespace_app = typer.Typer(help="Event Grid namespaces: topics, queue and push subscriptions.", no_args_is_help=True)
ns_topic_app = typer.Typer(help="Namespace topics (CloudEvents 1.0).", no_args_is_help=True)
ns_subscription_app = typer.Typer(help="Namespace topic event subscriptions.", no_args_is_help=True)
namespace_app.add_typer(ns_topic_app, name="topic")
namespace_app.add_typer(ns_subscription_app, name="subscription")


def namespace_json(ns: Namespace, https_base: str, runtime: Runtime) -> dict[str, Any]:
    return {"name": ns.name, "armId": runtime.namespaces.arm_id(ns.name), "location": ns.location,
            "endpoint": f"{https_base}/namespaces/{ns.name}", "key1": ns.key1, "key2": ns.key2}


# namespaces ---------------------------------------------------------------------------------------------
@namespace_app.command("create")
def namespace_create(
    name: str, capacity: Annotated[int, typer.Option(help="Throughput units (1-40).")] = 1,
    data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None, as_json: JsonFlag = False,
) -> None:
    """Create (or update) a namespace with two new keys; prints its data-plane endpoint."""
    settings = settings_for(data_dir, store)

    async def action(runtime: Runtime) -> dict[str, Any]:
        ns, _ = await runtime.namespaces.create_or_update_namespace(name, {"sku": {"capacity": capacity}})
        return namespace_json(ns, settings.https_base, runtime)

    data = run(data_dir, store, action)
    if as_json:
        print_json(data)
        return
    console.print(f"namespace {data['name']}  {data['endpoint']}", highlight=False)
    console.print(f"  key1={data['key1']}  key2={data['key2']}", highlight=False, soft_wrap=True)


@namespace_app.command("list")
def namespace_list(data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None, as_json: JsonFlag = False) -> None:
    """Namespaces with their endpoints."""
    settings = settings_for(data_dir, store)

    async def action(runtime: Runtime) -> list[dict[str, Any]]:
        return [namespace_json(ns, settings.https_base, runtime) for ns in await runtime.namespaces.list_namespaces()]

    data = run(data_dir, store, action)
    if as_json:
        print_json(data)
        return
    table = Table("name", "endpoint")
    for ns in data:
        table.add_row(ns["name"], ns["endpoint"])
    console.print(table)


@namespace_app.command("delete")
def namespace_delete(name: str, data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None) -> None:
    """Delete a namespace with its topics, subscriptions and events."""
    run(data_dir, store, lambda runtime: runtime.namespaces.delete_namespace(name))
    console.print(f"deleted namespace {name}")


@namespace_app.command("keys")
def namespace_keys(
    name: str, regenerate: Annotated[str | None, typer.Option(help="key1 or key2: replace it first.")] = None,
    data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None,
) -> None:
    """Print the namespace's access keys (as JSON)."""

    async def action(runtime: Runtime) -> dict[str, str]:
        if regenerate:
            return await runtime.namespaces.regenerate_key(name, regenerate)
        return await runtime.namespaces.list_keys(name)

    print_json(run(data_dir, store, action))


# topics -------------------------------------------------------------------------------------------------
def _topic_json(topic: NamespaceTopic, runtime: Runtime) -> dict[str, Any]:
    return topic.to_arm(runtime.namespaces.arm_id(topic.namespace, topic.name))


@ns_topic_app.command("create")
def ns_topic_create(
    namespace: str, name: str,
    retention_days: Annotated[int, typer.Option(help="eventRetentionInDays (1-7).")] = 7,
    data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None,
) -> None:
    """Create (or update) a namespace topic; prints its ARM resource."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        topic, _ = await runtime.namespaces.create_or_update_topic(
            namespace, name, {"eventRetentionInDays": retention_days})
        return _topic_json(topic, runtime)

    print_json(run(data_dir, store, action))


@ns_topic_app.command("list")
def ns_topic_list(namespace: str, data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None) -> None:
    """A namespace's topics (ARM resources, as JSON)."""

    async def action(runtime: Runtime) -> list[dict[str, Any]]:
        return [_topic_json(t, runtime) for t in await runtime.namespaces.list_topics(namespace)]

    print_json(run(data_dir, store, action))


@ns_topic_app.command("delete")
def ns_topic_delete(namespace: str, name: str, data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None) -> None:
    """Delete a namespace topic with its subscriptions and events."""
    run(data_dir, store, lambda runtime: runtime.namespaces.delete_topic(namespace, name))
    console.print(f"deleted namespace topic {namespace}/{name}")


# subscriptions ------------------------------------------------------------------------------------------
def _sub_json(sub: NamespaceSubscription, runtime: Runtime) -> dict[str, Any]:
    return sub.to_arm(runtime.namespaces.arm_id(sub.namespace, sub.topic, sub.name))


def subscription_properties(
    mode: str, lock_duration: int | None, max_delivery_count: int | None, ttl: str | None, endpoint: str | None,
    event_types: list[str] | None, filters: list[str] | None,
) -> dict[str, Any]:
    """ARM `properties` from the command's options (validated by the service)."""
    common = {k: v for k, v in (("maxDeliveryCount", max_delivery_count), ("eventTimeToLive", ttl)) if v is not None}
    if mode.lower() == "push":
        delivery: dict[str, Any] = {"deliveryMode": "Push", "push": {
            **common, "destination": {"endpointType": "WebHook", "properties": {"endpointUrl": endpoint}}}}
    else:
        queue = {**common, **({"receiveLockDurationInSeconds": lock_duration} if lock_duration is not None else {})}
        delivery = {"deliveryMode": "Queue" if mode.lower() == "queue" else mode, "queue": queue}
    try:
        parsed = [json.loads(f) for f in filters or []]
    except json.JSONDecodeError as exc:
        raise BadRequest(f"--filter must be a JSON object such as"
                         f' {{"operatorType":"StringIn","key":"subject","values":["a"]}}: {exc}') from None
    config: dict[str, Any] = {"filters": parsed}
    if event_types:
        config["includedEventTypes"] = event_types
    return {"deliveryConfiguration": delivery, "eventDeliverySchema": "CloudEventSchemaV1_0",
            "filtersConfiguration": config}


@ns_subscription_app.command("create")
def ns_subscription_create(
    namespace: str, topic: str, name: str,
    mode: Annotated[str, typer.Option(help="queue (pull) or push (webhook).")] = "queue",
    lock_duration: Annotated[int | None, typer.Option(help="Queue: receiveLockDurationInSeconds (60-300).")] = None,
    max_delivery_count: Annotated[int | None, typer.Option(help="maxDeliveryCount (1-10).")] = None,
    ttl: Annotated[str | None, typer.Option(help="eventTimeToLive, ISO 8601 (e.g. P1D, PT10M).")] = None,
    endpoint: Annotated[str | None, typer.Option(help="Push: the webhook URL.")] = None,
    event_type: Annotated[list[str] | None, typer.Option(help="includedEventTypes (repeatable).")] = None,
    filter_: Annotated[list[str] | None, typer.Option("--filter", help="A filter as JSON (repeatable).")] = None,
    data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None,
) -> None:
    """Create (or replace) a namespace topic event subscription; prints its ARM resource."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        props = subscription_properties(mode, lock_duration, max_delivery_count, ttl, endpoint, event_type, filter_)
        sub, _ = await runtime.namespaces.create_or_update_subscription(namespace, topic, name, props)
        return _sub_json(sub, runtime)

    print_json(run(data_dir, store, action))


@ns_subscription_app.command("list")
def ns_subscription_list(namespace: str, topic: str, data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None) -> None:
    """A namespace topic's event subscriptions (ARM resources, as JSON)."""

    async def action(runtime: Runtime) -> list[dict[str, Any]]:
        return [_sub_json(s, runtime) for s in await runtime.namespaces.list_subscriptions(namespace, topic)]

    print_json(run(data_dir, store, action))


@ns_subscription_app.command("delete")
def ns_subscription_delete(
    namespace: str, topic: str, name: str, data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None
) -> None:
    """Delete an event subscription with its pending events."""
    run(data_dir, store, lambda runtime: runtime.namespaces.delete_subscription(namespace, topic, name))
    console.print(f"deleted event subscription {namespace}/{topic}/{name}")


@ns_subscription_app.command("deadletters")
def ns_subscription_deadletters(
    namespace: str, topic: str, name: str, limit: int = 100,
    data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None,
) -> None:
    """Dead-lettered events (rejected, out of deliveries or past their time to live), newest first, as JSON."""

    async def action(runtime: Runtime) -> list[dict[str, Any]]:
        found = await runtime.namespaces.dead_letters(namespace, topic, name, limit)
        return [{"id": d.id, "reason": d.reason, "deliveryCount": d.attempts, "deadLetteredAt": d.dead_lettered_at,
                 "event": orjson.loads(d.event.body)} for d in found]

    print_json(run(data_dir, store, action))


# pull ---------------------------------------------------------------------------------------------------
def pull(
    namespace: Annotated[str, typer.Option(help="Namespace name.")],
    topic: Annotated[str, typer.Option(help="Namespace topic name.")],
    subscription: Annotated[str, typer.Option(help="Queue event subscription name.")],
    ack: Annotated[bool, typer.Option(help="Acknowledge what was received (else release it at once).")] = False,
    max_events: Annotated[int, typer.Option(help="maxEvents (1-100).")] = 10,
    wait: Annotated[int, typer.Option(help="maxWaitTime in seconds (10-120).")] = 10,
    data_dir: DataDir = DEFAULT_DIR, store: StoreUrl = None,
) -> None:
    """Receive events from a queue subscription and print them, one JSON line each, with their broker properties."""

    async def action(runtime: Runtime) -> tuple[list[dict[str, Any]], str]:
        service = runtime.namespaces
        received = await service.receive(namespace, topic, subscription, max_events, wait)
        tokens = [r.lock_token for r in received]
        if tokens:
            settle = service.acknowledge if ack else service.release
            await settle(namespace, topic, subscription, tokens)
        lines = [{"brokerProperties": {"lockToken": r.lock_token, "deliveryCount": r.delivery_count},
                  "event": orjson.loads(r.event)} for r in received]
        return lines, "acknowledged" if ack else "released"

    try:
        lines, verb = run(data_dir, store, action)
    except BadRequest as exc:
        raise fail(exc) from None
    for line in lines:
        typer.echo(orjson.dumps(line).decode())
    err.print(f"{len(lines)} event(s) received and {verb}", style="dim", highlight=False)
