"""A no-op Starlette app: the HTTP stack's ceiling for the benchmarks."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def sink(request: Request) -> Response:
    await request.body()
    return Response(status_code=200)


async def ok(request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(routes=[Route("/topics/{topic}/api/events", sink, methods=["POST"]), Route("/healthz", ok)])
