"""Publishing to custom topics: `POST /topics/{topic}/api/events`
(https://learn.microsoft.com/azure/event-grid/post-to-custom-topic).

The busiest route, so a plain ASGI endpoint: it reads the ASGI scope itself instead of building a Starlette
`Request`, and the app serves it in front of Starlette's middleware and router (`PublishFastPath` in
`api/app.py`, which also renders its errors with the app's one error mapping). Authorize → read the body →
parse → `Grid.publish` (validate, route to subscriptions, group-commit) → 200 once committed.
"""

from __future__ import annotations

from starlette.datastructures import URL, QueryParams
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from commgrid.api.bodies import receive_limited
from commgrid.events.envelope import MAX_REQUEST_BYTES, parse_json_array
from commgrid.grid.loops import DELIVERY_HEADER, refuse_loop


def request_headers(scope: Scope) -> dict[str, str]:
    """The request's headers by name, a repeated one's first value, as Starlette's `Headers.get` gives them (ASGI
    servers send names in lower case). One dict costs a publish a third of what a `Headers` and its look-ups did,
    each of which walks the header list."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in reversed(scope["headers"])}


class PublishEvents:
    """The ASGI endpoint (a class, so that Starlette's `Route` takes it as ASGI rather than as a `Request`
    handler)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        grid = scope["app"].state.runtime.grid
        headers = request_headers(scope)
        # The URL and the query are built only when there is one: a key in a header needs neither.
        query = QueryParams(scope["query_string"]) if scope.get("query_string") else {}
        topic = await grid.authorize_publish(scope["path_params"]["topic"], lambda: str(URL(scope=scope)), headers,
                                             query)
        body = await receive_limited(receive, headers.get("content-length"), MAX_REQUEST_BYTES)
        events = parse_json_array(body, headers.get("content-type", "application/json"))
        if DELIVERY_HEADER in headers:  # only an Event Grid delivery can be a loop
            await refuse_loop(grid.store, topic, headers, events)
        await grid.publish(topic, events)
        # what Starlette's `Response(status_code=200)` sends
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


route = Route("/topics/{topic}/api/events", PublishEvents(), methods=["POST"])
routes = [route]
