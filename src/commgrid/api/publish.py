"""Publishing to custom topics: `POST /topics/{topic}/api/events`
(https://learn.microsoft.com/azure/event-grid/post-to-custom-topic)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from commgrid.api.bodies import read_limited
from commgrid.events.envelope import MAX_REQUEST_BYTES, parse_json_array
from commgrid.grid.loops import refuse_loop


async def publish_events(request: Request) -> Response:
    grid = request.app.state.runtime.grid
    # The URL and the query are built only when there is one: a key in a header needs neither.
    query = request.query_params if request.scope.get("query_string") else {}
    topic = await grid.authorize_publish(request.path_params["topic"], lambda: str(request.url), request.headers, query)
    body = await read_limited(request, MAX_REQUEST_BYTES)
    events = parse_json_array(body, request.headers.get("content-type", "application/json"))
    await refuse_loop(grid.store, topic, request.headers, events)
    await grid.publish(topic, events)
    return Response(status_code=200)


routes = [Route("/topics/{topic}/api/events", publish_events, methods=["POST"])]
