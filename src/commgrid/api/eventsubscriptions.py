"""The validation URL of event subscriptions: a GET validates one awaiting it
(https://learn.microsoft.com/azure/event-grid/end-point-validation-event-grid-events-schema).

`GET /eventsubscriptions/{topic}/{name}/validate?id=…&t=…&apiVersion=…&token=…`, the URL sent in the
`Microsoft.EventGrid.SubscriptionValidationEvent`; valid for 10 minutes (divided by the time scale).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


async def validate(request: Request) -> Response:
    subscriptions = request.app.state.runtime.subscriptions
    message = await subscriptions.validate_manually(
        request.path_params["topic"], request.path_params["name"], request.query_params.get("id", ""),
        request.query_params.get("token", ""),
    )
    return PlainTextResponse(message)


routes = [Route("/eventsubscriptions/{topic}/{name}/validate", validate, methods=["GET"])]
