"""Microsoft.EventGrid over ARM: custom topics, the system topic, and event subscriptions on either.

Statuses are the ones azure-mgmt-eventgrid accepts (201 for every create-or-update, 202/204 for a topic's
delete). Every resource is in a final state when answered except a subscription whose webhook has not finished
validation (`AwaitingManualAction`): the client polls it, told when by `Retry-After`, until its validation URL is
fetched. Invalid input is a 400 listing every problem, before anything is stored.
https://learn.microsoft.com/rest/api/eventgrid/controlplane/topics and …/event-subscriptions
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from commgrid.api.management.common import (
    body,
    field,
    metric_resource_id,
    no_content,
    object_field,
    page,
    resource,
    tags_of,
)
from commgrid.api.management.router import ArmCall, ArmRouter
from commgrid.errors import BadRequest, Conflict, InvalidInput, NotFound
from commgrid.events.envelope import CLOUDEVENTS, EVENTGRID
from commgrid.grid.options import parse_duration
from commgrid.grid.properties import AWAITING, CREATING, FAILED
from commgrid.grid.subscriptions import Saved
from commgrid.grid.topic_options import EXTENSION, TopicOptions, parse_options
from commgrid.store.base import Subscription, Topic

ACS_TOPIC_TYPE = "Microsoft.Communication.CommunicationServices"
_SCHEMAS = {s.lower(): s for s in (EVENTGRID, CLOUDEVENTS)}


# ------------------------------------------------------------------------------------------------------------
# Rendering


def render_topic(call: ArmCall, topic: Topic) -> dict[str, Any]:
    endpoint = f"{call.runtime.settings.https_base}/topics/{topic.name}/api/events"
    return {
        "id": topic.arm_id, "name": topic.name, "type": "Microsoft.EventGrid/topics",
        "location": topic.location or call.runtime.deployment.location, "tags": topic.tags,
        "sku": {"name": "Basic"}, "identity": {"type": "None"},
        "properties": {"provisioningState": "Succeeded", "endpoint": endpoint, "inputSchema": topic.input_schema,
                       "metricResourceId": metric_resource_id(topic.arm_id), "publicNetworkAccess": "Enabled",
                       "disableLocalAuth": False, "minimumTlsVersionAllowed": "1.2",
                       "dataResidencyBoundary": "WithinGeopair"},
    } | _options(topic)


def _options(topic: Topic) -> dict[str, Any]:
    """commgrid's options beside `properties`, only when some are set (so an Azure-only topic reads as Azure's)."""
    shown = topic.options.to_json()
    return {EXTENSION: shown} if shown else {}


def _options_given(b: dict[str, Any]) -> dict[str, int | None] | None:
    value = field(b, EXTENSION)
    return None if value is None else parse_options(value)


def render_system_topic(call: ArmCall, topic: Topic) -> dict[str, Any]:
    d = call.runtime.deployment
    return {
        "id": d.system_topic_arm_id, "name": d.system_topic_name, "type": "Microsoft.EventGrid/systemTopics",
        "location": topic.location or "global", "tags": topic.tags, "identity": {"type": "None"},
        "properties": {"provisioningState": "Succeeded", "source": d.acs_arm_id, "topicType": ACS_TOPIC_TYPE,
                       "metricResourceId": metric_resource_id(d.system_topic_arm_id)},
    } | _options(topic)


def _render_subscription(call: ArmCall, sub: Subscription, topic: Topic, *, reveal_secrets: bool = False
                         ) -> dict[str, Any]:
    return call.runtime.subscriptions.render(sub, topic, reveal_secrets=reveal_secrets)


def _subscription_answer(call: ArmCall, sub: Subscription, topic: Topic, status: int = 200, *,
                         reveal_secrets: bool = False) -> Response:
    return resource(_render_subscription(call, sub, topic, reveal_secrets=reveal_secrets), status,
                    in_progress=sub.status in (AWAITING, CREATING))


# ------------------------------------------------------------------------------------------------------------
# Custom topics


def _input_schema(value: Any) -> str:
    if value is None:
        return EVENTGRID
    schema = _SCHEMAS.get(value.lower()) if isinstance(value, str) else None
    if schema is None:
        raise InvalidInput(f"inputSchema '{value}' is not supported; use {EVENTGRID} or {CLOUDEVENTS}"
                           " (commgrid has no input schema mappings).", code="InvalidInputSchema")
    return schema


def _topic_settings(b: dict[str, Any]) -> tuple[str, str, dict[str, str]]:
    """Location, input schema and tags of a topic PUT body, checked as Azure checks them."""
    props = object_field(b, "properties")
    location = field(b, "location")
    if not isinstance(location, str) or not location:
        raise InvalidInput("The 'location' property is required for a topic.", code="LocationRequired")
    if field(props, "inputSchemaMapping") is not None:
        raise InvalidInput("inputSchemaMapping is not supported: commgrid takes events in EventGridSchema or"
                           f" {CLOUDEVENTS}.", code="InvalidInputSchema")
    if field(props, "disableLocalAuth") is True:
        raise InvalidInput("disableLocalAuth=true is not supported: commgrid authenticates publishers with access"
                           " keys and SAS tokens only.", code="InvalidRequest")
    return location, _input_schema(field(props, "inputSchema")), tags_of(b) or {}


async def _custom_topic(call: ArmCall, name: str | None = None) -> Topic:
    name = name or call.params["topic"]
    topic = await call.runtime.grid.get_topic(name)
    if topic.kind != "custom":
        raise NotFound(f"The Resource 'Microsoft.EventGrid/topics/{name}' under resource group"
                       f" '{call.params['rg']}' was not found.", code="ResourceNotFound")
    return topic


async def _maybe_topic(call: ArmCall, name: str) -> Topic | None:
    try:
        return await call.runtime.grid.get_topic(name)
    except NotFound:
        return None


async def put_topic(call: ArmCall) -> Response:
    name, grid, b = call.params["topic"], call.runtime.grid, await body(call)
    location, schema, tags = _topic_settings(b)
    options = _options_given(b) or {}
    existing = await _maybe_topic(call, name)
    if existing is not None and existing.kind != "custom":
        raise Conflict(f"The name '{name}' is taken by the Communication Services system topic.",
                       code="ResourceNameConflict")
    if existing is None:
        topic = await grid.create_topic(name, schema, location=location, tags=tags,
                                        options=TopicOptions().merged(options))
    else:  # a PUT replaces the resource: options it leaves out are unset
        unset: dict[str, int | None] = dict.fromkeys(existing.options.to_json())
        topic = await grid.update_topic(existing.name, location=location, tags=tags, input_schema=schema,
                                        options=unset | options)
    return resource(render_topic(call, topic), 201)


async def get_topic(call: ArmCall) -> Response:
    return resource(render_topic(call, await _custom_topic(call)))


async def patch_topic(call: ArmCall) -> Response:
    topic, b = await _custom_topic(call), await body(call)
    topic = await call.runtime.grid.update_topic(topic.name, tags=tags_of(b), options=_options_given(b))
    return resource(render_topic(call, topic))


async def delete_topic(call: ArmCall) -> Response:
    existing = await _maybe_topic(call, call.params["topic"])
    if existing is None or existing.kind != "custom":
        return no_content()
    await call.runtime.grid.delete_topic(existing.name)
    return no_content(202)


async def list_topics(call: ArmCall) -> Response:
    topics = [t for t in await call.runtime.grid.list_topics() if t.kind == "custom"]
    return page(call, [render_topic(call, t) for t in topics])


def _keys(topic: Topic) -> dict[str, str]:
    return {"key1": topic.key1, "key2": topic.key2}


async def list_topic_keys(call: ArmCall) -> Response:
    return resource(_keys(await _custom_topic(call)))


async def regenerate_topic_key(call: ArmCall) -> Response:
    topic = await _custom_topic(call)
    key_name = field(await body(call), "keyName")
    if not isinstance(key_name, str) or key_name.lower() not in ("key1", "key2"):
        raise InvalidInput(f"keyName must be 'key1' or 'key2'; got {key_name!r}.", code="InvalidKeyName")
    return resource(_keys(await call.runtime.grid.regenerate_key(topic.name, key_name.lower())))


# ------------------------------------------------------------------------------------------------------------
# The system topic


async def _system_topic(call: ArmCall, name: str | None = None) -> Topic:
    d = call.runtime.deployment
    name = name or call.params["systemTopic"]
    if name.lower() != d.system_topic_name.lower():
        raise NotFound(f"The Resource 'Microsoft.EventGrid/systemTopics/{name}' under resource group"
                       f" '{d.resource_group}' was not found. commgrid's one system topic is"
                       f" '{d.system_topic_name}', for its Communication Services resource.", code="ResourceNotFound")
    return await call.runtime.grid.get_topic(d.system_topic_name)


async def get_system_topic(call: ArmCall) -> Response:
    return resource(render_system_topic(call, await _system_topic(call)))


async def list_system_topics(call: ArmCall) -> Response:
    topic = await call.runtime.grid.get_topic(call.runtime.deployment.system_topic_name)
    return page(call, [render_system_topic(call, topic)])


async def put_system_topic(call: ArmCall) -> Response:
    """The Communication Services resource's system topic exists from the first start: PUT confirms and tags it."""
    d, b = call.runtime.deployment, await body(call)
    props = object_field(b, "properties")
    source, kind = field(props, "source"), field(props, "topicType")
    if not isinstance(source, str) or source.lower() != d.acs_arm_id.lower():
        raise InvalidInput(f"properties.source must be the Communication Services resource id '{d.acs_arm_id}';"
                           f" got {source!r}. commgrid has no other event sources.", code="InvalidSource")
    if kind is not None and (not isinstance(kind, str) or kind.lower() != ACS_TOPIC_TYPE.lower()):
        raise InvalidInput(f"properties.topicType must be '{ACS_TOPIC_TYPE}'; got {kind!r}.", code="InvalidTopicType")
    name = call.params["systemTopic"]
    if name.lower() != d.system_topic_name.lower():
        raise Conflict(f"Only one system topic is allowed per source, and '{d.system_topic_name}' already exists"
                       f" for '{d.acs_arm_id}'. Use that name (it is the --resource-name given on first start).",
                       code="SystemTopicAlreadyExists")
    location = field(b, "location")
    topic = await call.runtime.grid.get_topic(d.system_topic_name)
    unset: dict[str, int | None] = dict.fromkeys(topic.options.to_json())
    topic = await call.runtime.grid.update_topic(
        d.system_topic_name, location=location if isinstance(location, str) else None, tags=tags_of(b) or {},
        options=unset | (_options_given(b) or {}))
    return resource(render_system_topic(call, topic), 200)


async def patch_system_topic(call: ArmCall) -> Response:
    topic, b = await _system_topic(call), await body(call)
    topic = await call.runtime.grid.update_topic(topic.name, tags=tags_of(b), options=_options_given(b))
    return resource(render_system_topic(call, topic))


async def delete_system_topic(call: ArmCall) -> Response:
    """Deletes the system topic's event subscriptions; the topic itself lives as long as the resource does."""
    topic = await _system_topic(call)
    subscriptions = call.runtime.subscriptions
    for sub in await subscriptions.list(topic.name):
        await subscriptions.delete(topic.name, sub.name)
    return no_content(200)


# ------------------------------------------------------------------------------------------------------------
# Event subscriptions


async def _scope_topic(call: ArmCall, scope: str) -> Topic:
    """The topic behind an ARM scope: a custom topic, the system topic, or the Communication Services resource."""
    d = call.runtime.deployment
    parts = scope.strip("/").split("/")
    if (len(parts) == 8 and parts[0].lower() == "subscriptions" and parts[2].lower() == "resourcegroups"
            and parts[4].lower() == "providers"):
        _, sub, _, rg, _, namespace, kind, name = parts
        if sub.lower() != d.subscription_id.lower() or rg.lower() != d.resource_group.lower():
            raise NotFound(f"The scope '{scope}' is not in commgrid's subscription and resource group.",
                           code="ResourceNotFound")
        kind = f"{namespace}/{kind}".lower()
        if kind == "microsoft.eventgrid/topics":
            return await _custom_topic(call, name)
        if kind == "microsoft.eventgrid/systemtopics":
            return await _system_topic(call, name)
        if kind == "microsoft.communication/communicationservices" and name.lower() == d.resource_name.lower():
            return await call.runtime.grid.get_topic(d.system_topic_name)
    raise BadRequest(f"Scope '{scope}' is not supported: commgrid takes event subscriptions on its custom topics,"
                     " its system topic and its Communication Services resource.", code="InvalidScope")


async def _subscription_topic(call: ArmCall) -> Topic:
    p = call.params
    if "topic" in p:
        return await _custom_topic(call)
    if "systemTopic" in p:
        return await _system_topic(call)
    if "namespace" in p:
        return await _scope_topic(call, f"/subscriptions/{p['sub']}/resourceGroups/{p['rg']}/providers/"
                                        f"{p['namespace']}/{p['kind']}/{p['name']}")
    return await _scope_topic(call, p["scope"])


async def put_subscription(call: ArmCall) -> Response:
    """Create or replace; commgrid's options come in the `commgrid` member beside `properties` (README)."""
    topic = await _subscription_topic(call)
    b = await body(call)
    properties = field(b, "properties")
    saved, _ = await call.runtime.subscriptions.put(topic.name, call.params["subscription"],
                                                    properties if properties is not None else {},
                                                    field(b, "commgrid"))
    return _saved_answer(call, saved, topic)


async def patch_subscription(call: ArmCall) -> Response:
    topic = await _subscription_topic(call)
    changes = dict(await body(call))
    options = changes.pop(next((k for k in changes if k.lower() == "commgrid"), "commgrid"), None)
    saved = await call.runtime.subscriptions.update(topic.name, call.params["subscription"], changes, options)
    return _saved_answer(call, saved, topic)


def _saved_answer(call: ArmCall, saved: Saved, topic: Topic) -> Response:
    if saved.subscription.status == FAILED:  # Azure fails the operation with the handshake's reason
        raise BadRequest(saved.message, code="Url validation")
    return _subscription_answer(call, saved.subscription, topic, 201, reveal_secrets=saved.new_secret)


async def rotate_signing_secret(call: ArmCall) -> Response:
    """commgrid's action: a new signing secret (shown once); the old ones keep signing for `overlap`."""
    topic = await _subscription_topic(call)
    b = await body(call)
    overlap_text = field(b, "overlap", "PT1H")
    overlap = parse_duration(overlap_text) if isinstance(overlap_text, str) else None
    if overlap is None:
        raise InvalidInput(f"overlap must be an ISO 8601 duration such as 'PT1H' or 'PT0S'; got {overlap_text!r}.")
    secret = field(b, "secret")
    saved = await call.runtime.subscriptions.rotate_secret(topic.name, call.params["subscription"], overlap,
                                                           secret if isinstance(secret, str) else None)
    return _subscription_answer(call, saved.subscription, topic, reveal_secrets=True)


async def enable_subscription(call: ArmCall) -> Response:
    """commgrid's action: deliver again to a subscription disabled after its endpoint kept failing."""
    topic = await _subscription_topic(call)
    sub = await call.runtime.subscriptions.enable(topic.name, call.params["subscription"])
    return _subscription_answer(call, sub, topic)


async def get_subscription(call: ArmCall) -> Response:
    topic = await _subscription_topic(call)
    return _subscription_answer(call, await call.runtime.subscriptions.get(topic.name, call.params["subscription"]),
                                topic)


async def delete_subscription(call: ArmCall) -> Response:
    topic = await _subscription_topic(call)
    try:
        await call.runtime.subscriptions.delete(topic.name, call.params["subscription"])
    except NotFound:
        return no_content()
    return no_content(200)


async def subscription_full_url(call: ArmCall) -> Response:
    topic = await _subscription_topic(call)
    return resource({"endpointUrl": await call.runtime.subscriptions.full_url(topic.name, call.params["subscription"])})


async def subscription_delivery_attributes(call: ArmCall) -> Response:
    topic = await _subscription_topic(call)
    sub = await call.runtime.subscriptions.get(topic.name, call.params["subscription"])
    return resource({"value": [a.to_arm() for a in sub.properties.destination.delivery_attributes]})


async def replay_subscription(call: ArmCall) -> Response:
    """commgrid's replay action: `{"from", "to", "dryRun"}` in, the replay's counts out (grid/replay.py)."""
    topic, b = await _subscription_topic(call), await body(call)
    dry_run = field(b, "dryRun", False)
    if not isinstance(dry_run, bool):
        raise InvalidInput(f"dryRun must be true or false; got {dry_run!r}.", code="InvalidRequestContent")
    result = await call.runtime.replays.replay(topic.name, call.params["subscription"], field(b, "from"),
                                               field(b, "to"), dry_run=dry_run)
    return resource(result.to_json())


async def list_topic_subscriptions(call: ArmCall) -> Response:
    topic = await _subscription_topic(call)
    subs = await call.runtime.subscriptions.list(topic.name)
    return page(call, [_render_subscription(call, s, topic) for s in subs])


async def list_all_subscriptions(call: ArmCall) -> Response:
    """Every event subscription of the deployment (commgrid has one subscription and one resource group)."""
    topics = {t.name: t for t in await call.runtime.grid.list_topics()}
    subs = await call.runtime.subscriptions.list()
    return page(call, [_render_subscription(call, s, topics[s.topic]) for s in subs if s.topic in topics])


# ------------------------------------------------------------------------------------------------------------
# Routes

_SUB = "/subscriptions/{sub}"
_RG = _SUB + "/resourceGroups/{rg}"
_EG = _RG + "/providers/Microsoft.EventGrid"


def add_routes(router: ArmRouter) -> None:
    router.add("GET", _SUB + "/providers/Microsoft.EventGrid/topics", list_topics)
    router.add("GET", _EG + "/topics", list_topics)
    for method, handler in (("PUT", put_topic), ("GET", get_topic), ("PATCH", patch_topic), ("DELETE", delete_topic)):
        router.add(method, _EG + "/topics/{topic}", handler)
    router.add("POST", _EG + "/topics/{topic}/listKeys", list_topic_keys)
    router.add("POST", _EG + "/topics/{topic}/regenerateKey", regenerate_topic_key)

    router.add("GET", _SUB + "/providers/Microsoft.EventGrid/systemTopics", list_system_topics)
    router.add("GET", _EG + "/systemTopics", list_system_topics)
    for method, handler in (("PUT", put_system_topic), ("GET", get_system_topic), ("PATCH", patch_system_topic),
                            ("DELETE", delete_system_topic)):
        router.add(method, _EG + "/systemTopics/{systemTopic}", handler)

    router.add("GET", _SUB + "/providers/Microsoft.EventGrid/eventSubscriptions", list_all_subscriptions)
    router.add("GET", _RG + "/providers/Microsoft.EventGrid/eventSubscriptions", list_all_subscriptions)
    router.add("GET", _RG + "/providers/{namespace}/{kind}/{name}/providers/Microsoft.EventGrid/eventSubscriptions",
               list_topic_subscriptions)
    router.add("GET", _EG + "/topics/{topic}/eventSubscriptions", list_topic_subscriptions)
    router.add("GET", _EG + "/systemTopics/{systemTopic}/eventSubscriptions", list_topic_subscriptions)
    for base in (_EG + "/topics/{topic}/eventSubscriptions/{subscription}",
                 _EG + "/systemTopics/{systemTopic}/eventSubscriptions/{subscription}",
                 "{scope:path}/providers/Microsoft.EventGrid/eventSubscriptions/{subscription}"):
        for method, handler in (("PUT", put_subscription), ("GET", get_subscription),
                                ("PATCH", patch_subscription), ("DELETE", delete_subscription)):
            router.add(method, base, handler)
        router.add("POST", base + "/getFullUrl", subscription_full_url)
        router.add("POST", base + "/getDeliveryAttributes", subscription_delivery_attributes)
        router.add("POST", base + "/rotateSigningSecret", rotate_signing_secret)
        router.add("POST", base + "/enable", enable_subscription)
        router.add("POST", base + "/replay", replay_subscription)
