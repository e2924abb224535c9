"""Microsoft.EventGrid namespaces over ARM: namespaces, namespace topics and their event subscriptions.

Thin handlers over `grid.namespaces.Namespaces` (the same service the `commgrid namespace` commands use).
Every answer is final: create-or-update answers 201 (200 when it existed), delete 200 (204 when already gone).
https://learn.microsoft.com/rest/api/eventgrid/controlplane/namespaces
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from commgrid.api.management.common import body, field, no_content, object_field, page, resource, tags_of
from commgrid.api.management.router import ArmCall, ArmRouter
from commgrid.errors import BadRequest, InvalidInput, NotFound
from commgrid.grid.namespaces.models import PUSH, NamespaceSubscription


def _service(call: ArmCall) -> Any:
    return call.runtime.namespaces


def _render_namespace(call: ArmCall, namespace: Any) -> dict[str, Any]:
    host = call.runtime.settings.https_base.split("://", 1)[1]
    return namespace.to_arm(_service(call).arm_id(namespace.name), hostname=f"{host}/namespaces/{namespace.name}")


def _render_topic(call: ArmCall, topic: Any) -> dict[str, Any]:
    return topic.to_arm(_service(call).arm_id(topic.namespace, topic.name))


def _render_subscription(call: ArmCall, sub: NamespaceSubscription) -> dict[str, Any]:
    return sub.to_arm(_service(call).arm_id(sub.namespace, sub.topic, sub.name))


def _created(created: bool) -> int:
    return 201 if created else 200


async def _gone(action: Any) -> Response:
    try:
        await action
    except NotFound:
        return no_content()
    return no_content(200)


# namespaces ------------------------------------------------------------------------------------------------
async def put_namespace(call: ArmCall) -> Response:
    namespace, created = await _service(call).create_or_update_namespace(call.params["namespace"], await body(call))
    return resource(_render_namespace(call, namespace), _created(created))


async def patch_namespace(call: ArmCall) -> Response:
    """NamespaceUpdateParameters: tags and sku change; what is not named stays."""
    current = await _service(call).get_namespace(call.params["namespace"])
    b = await body(call)
    merged = {"location": current.location, "tags": tags_of(b) if field(b, "tags") is not None else current.tags,
              "sku": field(b, "sku") or {"name": "Standard", "capacity": current.capacity}}
    namespace, _ = await _service(call).create_or_update_namespace(current.name, merged)
    return resource(_render_namespace(call, namespace))


async def get_namespace(call: ArmCall) -> Response:
    return resource(_render_namespace(call, await _service(call).get_namespace(call.params["namespace"])))


async def list_namespaces(call: ArmCall) -> Response:
    return page(call, [_render_namespace(call, n) for n in await _service(call).list_namespaces()])


async def delete_namespace(call: ArmCall) -> Response:
    return await _gone(_service(call).delete_namespace(call.params["namespace"]))


async def namespace_keys(call: ArmCall) -> Response:
    return resource(await _service(call).list_keys(call.params["namespace"]))


async def regenerate_namespace_key(call: ArmCall) -> Response:
    key_name = field(await body(call), "keyName")
    if not isinstance(key_name, str):
        raise InvalidInput("keyName must be 'key1' or 'key2'.", code="InvalidKeyName")
    return resource(await _service(call).regenerate_key(call.params["namespace"], key_name))


# namespace topics ------------------------------------------------------------------------------------------
async def put_topic(call: ArmCall) -> Response:
    topic, created = await _service(call).create_or_update_topic(
        call.params["namespace"], call.params["topic"], field(await body(call), "properties"))
    return resource(_render_topic(call, topic), _created(created))


async def patch_topic(call: ArmCall) -> Response:
    p = call.params
    current = await _service(call).get_topic(p["namespace"], p["topic"])
    changes = object_field(await body(call), "properties")
    topic, _ = await _service(call).create_or_update_topic(p["namespace"], current.name,
                                                          {**current.properties(), **changes})
    return resource(_render_topic(call, topic))


async def get_topic(call: ArmCall) -> Response:
    return resource(_render_topic(call, await _service(call).get_topic(call.params["namespace"],
                                                                       call.params["topic"])))


async def list_topics(call: ArmCall) -> Response:
    topics = await _service(call).list_topics(call.params["namespace"])
    return page(call, [_render_topic(call, t) for t in topics])


async def delete_topic(call: ArmCall) -> Response:
    return await _gone(_service(call).delete_topic(call.params["namespace"], call.params["topic"]))


async def topic_keys(call: ArmCall) -> Response:
    """Publishers of a namespace topic authenticate with its namespace's keys."""
    await _service(call).get_topic(call.params["namespace"], call.params["topic"])
    return resource(await _service(call).list_keys(call.params["namespace"]))


async def regenerate_topic_key(call: ArmCall) -> Response:
    raise BadRequest("A namespace topic's publishers use its namespace's keys: regenerate those"
                     " (namespaces.begin_regenerate_key).", code="InvalidRequest")


# namespace topic event subscriptions ------------------------------------------------------------------------
async def put_subscription(call: ArmCall) -> Response:
    p = call.params
    sub, created = await _service(call).create_or_update_subscription(
        p["namespace"], p["topic"], p["subscription"], field(await body(call), "properties"))
    return resource(_render_subscription(call, sub), _created(created))


async def patch_subscription(call: ArmCall) -> Response:
    """SubscriptionUpdateParameters: the given top-level properties replace the current ones."""
    p = call.params
    current = await _service(call).get_subscription(p["namespace"], p["topic"], p["subscription"])
    changes = object_field(await body(call), "properties")
    sub, _ = await _service(call).create_or_update_subscription(
        p["namespace"], p["topic"], current.name, {**current.properties, **changes})
    return resource(_render_subscription(call, sub))


async def get_subscription(call: ArmCall) -> Response:
    p = call.params
    sub = await _service(call).get_subscription(p["namespace"], p["topic"], p["subscription"])
    return resource(_render_subscription(call, sub))


async def list_subscriptions(call: ArmCall) -> Response:
    subs = await _service(call).list_subscriptions(call.params["namespace"], call.params["topic"])
    return page(call, [_render_subscription(call, s) for s in subs])


async def delete_subscription(call: ArmCall) -> Response:
    p = call.params
    return await _gone(_service(call).delete_subscription(p["namespace"], p["topic"], p["subscription"]))


async def _push_destination(call: ArmCall) -> dict[str, Any]:
    p = call.params
    sub = await _service(call).get_subscription(p["namespace"], p["topic"], p["subscription"])
    if sub.delivery_mode != PUSH:
        raise BadRequest(f"Event subscription '{sub.name}' delivers by Queue: it has no endpoint.",
                         code="InvalidRequest")
    return sub.properties["deliveryConfiguration"]["push"]["destination"]["properties"]


async def subscription_full_url(call: ArmCall) -> Response:
    return resource({"endpointUrl": (await _push_destination(call)).get("endpointUrl")})


async def subscription_delivery_attributes(call: ArmCall) -> Response:
    return resource({"value": (await _push_destination(call)).get("deliveryAttributeMappings") or []})


# routes ------------------------------------------------------------------------------------------------------
_NS = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.EventGrid/namespaces"


def add_routes(router: ArmRouter) -> None:
    router.add("GET", "/subscriptions/{sub}/providers/Microsoft.EventGrid/namespaces", list_namespaces)
    router.add("GET", _NS, list_namespaces)
    resources = {
        _NS + "/{namespace}": (put_namespace, get_namespace, patch_namespace, delete_namespace),
        _NS + "/{namespace}/topics/{topic}": (put_topic, get_topic, patch_topic, delete_topic),
        _NS + "/{namespace}/topics/{topic}/eventSubscriptions/{subscription}": (
            put_subscription, get_subscription, patch_subscription, delete_subscription),
    }
    for path, handlers in resources.items():
        for method, handler in zip(("PUT", "GET", "PATCH", "DELETE"), handlers, strict=True):
            router.add(method, path, handler)
    router.add("POST", _NS + "/{namespace}/listKeys", namespace_keys)
    router.add("POST", _NS + "/{namespace}/regenerateKey", regenerate_namespace_key)
    router.add("GET", _NS + "/{namespace}/topics", list_topics)
    router.add("POST", _NS + "/{namespace}/topics/{topic}/listKeys", topic_keys)
    router.add("POST", _NS + "/{namespace}/topics/{topic}/regenerateKey", regenerate_topic_key)
    router.add("GET", _NS + "/{namespace}/topics/{topic}/eventSubscriptions", list_subscriptions)
    sub_path = _NS + "/{namespace}/topics/{topic}/eventSubscriptions/{subscription}"
    router.add("POST", sub_path + "/getFullUrl", subscription_full_url)
    router.add("POST", sub_path + "/getDeliveryAttributes", subscription_delivery_attributes)
