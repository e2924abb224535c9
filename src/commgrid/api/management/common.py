"""What every management handler shares: the request body, ARM's responses, paging, and resource ids."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.responses import Response

from commgrid.api.bodies import read_limited
from commgrid.api.management.router import ArmCall
from commgrid.errors import BadRequest, InvalidInput
from commgrid.jsonfields import field
from commgrid.jsonresponse import json_response

MAX_BODY = 4 * 1024 * 1024  # ARM's request size limit
PAGE_SIZE = 100
#: Seconds a client waits before polling a resource that is not yet in a final state.
RETRY_AFTER = "1"


async def body(call: ArmCall) -> dict[str, Any]:
    """The request's JSON object (`{}` when there is none); 400 `InvalidRequestContent` if it is not one."""
    if call._body is None:
        raw = await read_limited(call.request, MAX_BODY)
        try:
            parsed = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"The request content was invalid and could not be deserialized: {exc}.",
                             code="InvalidRequestContent") from None
        if not isinstance(parsed, dict):
            raise BadRequest("The request content must be a JSON object.", code="InvalidRequestContent")
        call._body = parsed
    return call._body


def object_field(obj: dict[str, Any], name: str) -> dict[str, Any]:
    """A member that must be a JSON object (`{}` when absent); 400 otherwise."""
    value = field(obj, name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{name} must be a JSON object.", code="InvalidRequestContent")
    return value


def tags_of(obj: dict[str, Any]) -> dict[str, str] | None:
    tags = field(obj, "tags")
    if tags is None:
        return None
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise InvalidInput("tags must be an object of string values.", code="InvalidTags")
    return tags


def resource(body: dict[str, Any], status: int = 200, *, in_progress: bool = False) -> Response:
    """A resource; one not yet in a final state tells the client when to poll again (ARM's `Retry-After`)."""
    return json_response(body, status, headers={"Retry-After": RETRY_AFTER} if in_progress else None)


def no_content(status: int = 204) -> Response:
    return Response(status_code=status)


def page(call: ArmCall, items: list[dict[str, Any]]) -> Response:
    """One page of a list, `$top` items long (100 by default), with ARM's `nextLink` to the next one."""
    query = call.request.query_params
    try:
        top = max(1, min(int(query.get("$top") or PAGE_SIZE), PAGE_SIZE))
        start = max(0, int(query.get("$skipToken") or 0))
    except ValueError:
        raise BadRequest("$top and $skipToken must be integers.", code="InvalidQueryParameter") from None
    shown: dict[str, Any] = {"value": items[start:start + top]}
    if start + top < len(items):
        params = {**query, "$top": str(top), "$skipToken": str(start + top)}
        shown["nextLink"] = str(call.request.url.replace(query=urlencode(params)))
    return json_response(shown)


def metric_resource_id(arm_id: str) -> str:
    """A stable GUID per resource, standing in for Azure's metric resource id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, arm_id.lower()))
