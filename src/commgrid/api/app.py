"""The ASGI application: every surface's routes and one error mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from commgrid.api import acs, eventsubscriptions, health, management, namespaces, publish
from commgrid.api import console as console_api
from commgrid.api import metrics as metrics_api
from commgrid.api.errors import HANDLERS, render_error
from commgrid.config import Settings
from commgrid.runtime import Runtime


def create_app(settings: Settings, runtime: Runtime | None = None) -> ASGIApp:
    """The commgrid app: Starlette, with the publish route in front of it (`PublishFastPath`).

    Given a `runtime`, the caller opens and closes it (as `commgrid serve` does, for two listeners);
    otherwise the app's lifespan opens a new one with its background workers.
    """
    lifespan = None
    if runtime is None:
        runtime = Runtime(settings)
        owned = runtime

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            await owned.open(workers=True)
            try:
                yield
            finally:
                await owned.close()

    routes = [*health.routes, *publish.routes, *acs.routes, *eventsubscriptions.routes, *management.routes,
              *namespaces.routes]
    routes += [*console_api.routes, *metrics_api.routes]  # the operator console and /metrics
    middleware = [Middleware(ArmPathPrefix)]
    app = Starlette(routes=routes, exception_handlers=HANDLERS, lifespan=lifespan, middleware=middleware)
    app.state.runtime = runtime
    return PublishFastPath(app, [publish.route, namespaces.publish_route])


class PublishFastPath:
    """ASGI, in front of the Starlette app: requests to the publish `routes` go straight to their endpoints.

    Starlette's middleware stack and its router, which tries dozens of routes in turn, cost a publish more than
    its own validation does, so the publish routes skip them. A request is routed as Starlette's router would
    (each route's own match; another method on a publish path goes on to the app, which answers 405), and errors
    get the app's answers from its one error mapping (`render_error`). Everything else goes on to the app.
    """

    def __init__(self, app: Starlette, routes: list[Route]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        for route in self.routes:
            match, child_scope = route.matches(scope)  # Match.NONE for lifespan and websocket scopes
            if match is Match.FULL:
                scope.update(child_scope, app=self.app)  # what Starlette and its router put in the scope
                try:
                    await route.app(scope, receive, send)  # what `route.handle` calls once the method matched
                except Exception as exc:
                    await render_error(scope, receive, send, exc)
                return
        await self.app(scope, receive, send)


class ArmPathPrefix:
    """ARM paths are case-insensitive: `/Subscriptions/…` reaches the management routes like `/subscriptions/…`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        prefix = path[:15]
        if prefix[1:2] in ("s", "S") and prefix != "/subscriptions/" and prefix.lower() == "/subscriptions/":
            scope = {**scope, "path": "/subscriptions/" + path[15:]}
        await self.app(scope, receive, send)
