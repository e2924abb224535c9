"""Publishing to custom topics: `POST /topics/{topic}/api/events`
(https://learn.microsoft.com/azure/event-grid/post-to-custom-topic).

The busiest route, so a plain ASGI endpoint: it reads the ASGI scope itself instead of building a Starlette
`Request`, and the app serves it in front of Starlette's middleware and router (`PublishFastPath` in
`api/app.py`, which also renders its errors with the app's one error mapping). Authorize → read the body →
parse → `Grid.publish` (validate, route to subscriptions, group-commit) → 200 once committed.
"""

from __future__ import annotations

from starlette.datastructures import URL, Headers, QueryParams
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from commgrid.api.bodies import receive_limited
from commgrid.events.envelope import MAX_REQUEST_BYTES, parse_json_array
from commgrid.grid.loops import refuse_loop


class PublishEvents:
    """The ASGI endpoint (a class, so that Starlette's `Route` takes it as ASGI rather than as a `Request`
    handler)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        grid = scope["app"].state.runtime.grid
        headers = Headers(scope=scope)
        # The URL and the query are built only when there is one: a key in a header needs neither.
        query = QueryParams(scope["query_string"]) if scope.get("query_string") else {}
        topic = await grid.authorize_publish(scope["path_params"]["topic"], lambda: str(URL(scope=scope)), headers,
                                             query)
        body = await receive_limited(receive, headers.get("content-length"), MAX_REQUEST_BYTES)
        events = parse_json_array(body, headers.get("content-type", "application/json"))
        await refuse_loop(grid.store, topic, headers, events)
        await grid.publish(topic, events)
        # what Starlette's `Response(status_code=200)` sends
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


route = Route("/topics/{topic}/api/events", PublishEvents(), methods=["POST"])
routes = [route]
