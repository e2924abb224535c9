"""One place that turns exceptions into Azure's error JSON."""

from __future__ import annotations

import logging
from http import HTTPStatus

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from commgrid.errors import CommgridError, from_store
from commgrid.jsonresponse import json_response
from commgrid.store.errors import StoreError

log = logging.getLogger("commgrid.api")


async def commgrid_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CommgridError)
    return json_response(exc.to_body(), status=exc.status, headers=getattr(exc, "headers", None))


async def store_error(request: Request, exc: Exception) -> Response:
    """A store error the service did not translate (the database failed, or a record vanished mid-request)."""
    assert isinstance(exc, StoreError)
    return await commgrid_error(request, from_store(exc))


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", extra={"action": "request_failed", "path": request.url.path})
    body = {"error": {"code": "InternalServerError", "message": "An internal error occurred."}}
    return json_response(body, status=500)


async def client_disconnected(request: Request, exc: Exception) -> Response:
    """A client that went away mid-request is routine: one debug line, and a response nobody reads."""
    log.debug("client disconnected", extra={"action": "client_disconnected", "path": request.url.path})
    return Response(status_code=400)


async def http_error(request: Request, exc: Exception) -> Response:
    """Routing errors (no such path, method not allowed) in the same error format as everything else."""
    assert isinstance(exc, HTTPException)
    phrase = HTTPStatus(exc.status_code).phrase
    message = f"{phrase}: {request.method} {request.url.path}."
    body = {"error": {"code": phrase.replace(" ", ""), "message": message, "details": []}}
    return json_response(body, status=exc.status_code, headers=exc.headers)


HANDLERS = {CommgridError: commgrid_error, StoreError: store_error, HTTPException: http_error,
            ClientDisconnect: client_disconnected, Exception: unexpected_error}


async def render_error(scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
    """Answer `exc` as Starlette's middleware would with `HANDLERS`, for an endpoint served outside it (the
    publish fast path): the handler of its nearest class; an unexpected error is raised again after its 500, as
    Starlette does, so the server logs it too."""
    handler = next(HANDLERS[cls] for cls in type(exc).__mro__ if cls in HANDLERS)
    response = await handler(Request(scope, receive), exc)
    await response(scope, receive, send)
    if handler is unexpected_error:
        raise exc
    exc.__traceback__ = None  # as Starlette: an exception instance raised again must not collect tracebacks
