"""`GET /metrics`: Prometheus exposition of `commgrid.metrics` (loopback, or the management credential)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from commgrid.console import access
from commgrid.errors import Unauthorized
from commgrid.metrics import CONTENT_TYPE


async def metrics(request: Request) -> Response:
    if not access.authorized(request):
        raise Unauthorized("/metrics needs 'Authorization: Bearer <management token>' when commgrid listens"
                           " beyond loopback.", code="AuthenticationFailed")
    runtime = request.app.state.runtime
    return Response(runtime.metrics.render(await runtime.store.delivery_backlog()), media_type=CONTENT_TYPE)


routes = [Route("/metrics", metrics, methods=["GET"])]
