"""The Event Grid namespace data plane at `/namespaces/{namespace}` (api-version 2024-06-01).

    POST /namespaces/{ns}/topics/{topic}:publish
    POST /namespaces/{ns}/topics/{topic}/eventsubscriptions/{sub}:receive?maxEvents=N&maxWaitTime=S
    POST …/eventsubscriptions/{sub}:acknowledge | :release?releaseDelayInSeconds=S | :reject | :renewLock

Publishing takes CloudEvents in structured (`application/cloudevents+json`), batched
(`application/cloudevents-batch+json`) or binary (`ce-*` headers, the body is the data) content mode.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from commgrid.api.bodies import read_limited
from commgrid.errors import BadRequest, Detail, InvalidInput, NotFound
from commgrid.events.envelope import MAX_REQUEST_BYTES, parse_json_array
from commgrid.grid.namespaces import Namespaces, Received

API_VERSIONS = ("2023-06-01-preview", "2023-10-01-preview", "2023-11-01", "2024-06-01")
_JSON = {"content-type": "application/json; charset=utf-8"}
_SETTLE = {"acknowledge", "release", "reject", "renewLock"}


def _service(request: Request) -> Namespaces:
    return request.app.state.runtime.namespaces


def _split(value: str, actions: set[str]) -> tuple[str, str]:
    name, _, action = value.rpartition(":")
    if not name or action not in actions:
        raise NotFound(f"The requested operation '{value}' was not found.", code="NotFound")
    return name, action


def _check_api_version(request: Request) -> None:
    version = request.query_params.get("api-version")
    if version is None:
        raise BadRequest("The api-version query parameter is required (2024-06-01).", code="MissingApiVersionParameter")
    if version not in API_VERSIONS:
        raise BadRequest(f"The api-version '{version}' is not supported; use one of {', '.join(API_VERSIONS)}.",
                         code="InvalidApiVersionParameter")


async def _authorized(request: Request) -> Namespaces:
    _check_api_version(request)
    service = _service(request)
    await service.authorize(request.path_params["namespace"], str(request.url), request.headers,
                            request.query_params)
    return service


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput.from_problems([Detail("BadRequest", f"{name} must be an integer; got '{raw}'.")]) from None


def binary_event(headers: Any, body: bytes) -> dict[str, Any]:
    """A CloudEvent from HTTP binary content mode: attributes in `ce-*` headers, the body as its data."""
    event: dict[str, Any] = {k[3:].lower(): v for k, v in headers.items() if k.lower().startswith("ce-")}
    content_type = headers.get("content-type")
    if content_type:
        event["datacontenttype"] = content_type
    if body:
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media == "application/json" or media.endswith("+json"):
            try:
                event["data"] = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise InvalidInput.from_problems([Detail("InputJsonInvalid", f"The event data is not valid JSON:"
                                                         f" {exc}.")]) from None
        elif media.startswith("text/"):
            event["data"] = body.decode("utf-8", errors="replace")
        else:
            event["data_base64"] = base64.b64encode(body).decode()
    return event


async def publish(request: Request) -> Response:
    service = await _authorized(request)
    topic, _ = _split(request.path_params["topic_action"], {"publish"})
    body = await read_limited(request, MAX_REQUEST_BYTES)
    content_type = request.headers.get("content-type", "application/cloudevents-batch+json")
    if "ce-specversion" in request.headers and not content_type.startswith("application/cloudevents"):
        events = [binary_event(request.headers, body)]
    else:
        events = parse_json_array(body, content_type)
    await service.publish(request.path_params["namespace"], topic, events)
    return Response(b"{}", headers=_JSON)


def _received_body(received: list[Received]) -> bytes:
    items = [b'{"brokerProperties":' + orjson.dumps({"lockToken": r.lock_token, "deliveryCount": r.delivery_count})
             + b',"event":' + r.event + b"}" for r in received]
    return b'{"value":[' + b",".join(items) + b"]}"


async def _lock_tokens(request: Request) -> list[str]:
    try:
        body = orjson.loads(await read_limited(request, MAX_REQUEST_BYTES))
    except orjson.JSONDecodeError as exc:
        problem = Detail("BadRequest", f"The request body is not valid JSON: {exc}.")
        raise InvalidInput.from_problems([problem]) from None
    tokens = body.get("lockTokens") if isinstance(body, dict) else None
    return tokens if tokens is not None else []


async def subscription_action(request: Request) -> Response:
    service = await _authorized(request)
    ns, topic = request.path_params["namespace"], request.path_params["topic"]
    sub, action = _split(request.path_params["sub_action"], {"receive", *_SETTLE})
    if action == "receive":
        received = await service.receive(ns, topic, sub, _int_param(request, "maxEvents", 1),
                                         _int_param(request, "maxWaitTime", 60))
        return Response(_received_body(received), headers=_JSON)
    tokens = await _lock_tokens(request)
    if action == "acknowledge":
        results = await service.acknowledge(ns, topic, sub, tokens)
    elif action == "release":
        results = await service.release(ns, topic, sub, tokens, _int_param(request, "releaseDelayInSeconds", 0))
    elif action == "reject":
        results = await service.reject(ns, topic, sub, tokens)
    else:
        results = await service.renew_locks(ns, topic, sub, tokens)
    return Response(orjson.dumps(results.to_body()), headers=_JSON)


publish_route = Route("/namespaces/{namespace}/topics/{topic_action}", publish, methods=["POST"])
routes = [
    publish_route,
    Route("/namespaces/{namespace}/topics/{topic}/eventsubscriptions/{sub_action}", subscription_action,
          methods=["POST"]),
]
