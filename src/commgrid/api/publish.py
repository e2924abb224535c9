"""Publishing to custom topics: `POST /topics/{topic}/api/events` (eventgrid-facts.md §2)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from commgrid.errors import PayloadTooLarge
from commgrid.events.envelope import MAX_REQUEST_BYTES, parse_json_array
from commgrid.grid.loops import refuse_loop


def _too_large(size: str) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body ({size} bytes) exceeds the maximum of {MAX_REQUEST_BYTES} bytes.",
                           code="RequestEntityTooLarge")


async def _limited_body(request: Request) -> bytes:
    """The body, refused as soon as it passes the limit (declared or, when chunked, as it streams in)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        raise _too_large(declared)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            raise _too_large(f"more than {MAX_REQUEST_BYTES}")
        chunks.append(chunk)
    return b"".join(chunks)


async def publish_events(request: Request) -> Response:
    grid = request.app.state.runtime.grid
    topic = await grid.authorize_publish(
        request.path_params["topic"], str(request.url), request.headers, request.query_params
    )
    events = parse_json_array(await _limited_body(request), request.headers.get("content-type", "application/json"))
    await refuse_loop(grid.store, topic, request.headers, events)
    await grid.publish(topic, events)
    return Response(status_code=200)


routes = [Route("/topics/{topic}/api/events", publish_events, methods=["POST"])]
