"""`GET /healthz`: 200 once the node accepts events.

`catalogVersion` is the store's change counter as this node's catalog (topics, subscriptions, keys) reflects
it, `storeVersion` the counter now: a change is live on the node once the first reaches what the second said.
`process` is the serving process's id (of several with `serve --workers N`).
"""

from __future__ import annotations

import os

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from commgrid import __version__
from commgrid.jsonresponse import json_response


async def healthz(request: Request) -> Response:
    runtime = request.app.state.runtime
    return json_response({"status": "ok", "version": __version__, "resource": runtime.deployment.resource_name,
                          "immutableResourceId": runtime.deployment.immutable_id,
                          "catalogVersion": runtime.grid.catalog.version,
                          "storeVersion": await runtime.store.subscriptions_version(), "process": os.getpid()})


routes = [Route("/healthz", healthz, methods=["GET"])]
