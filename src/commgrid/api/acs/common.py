"""What every Communication Services response shares: the api-version rule and the service's headers.

Any `api-version` is accepted but one must be present, else 400
`ApiVersionUnspecified`; real responses carry `MS-CV` and `X-Processing-Time`, and echo
`x-ms-client-request-id` when the request asks for it with `x-ms-return-client-request-id: true`.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from commgrid.errors import BadRequest


class ApiVersionUnspecified(BadRequest):
    """An API version is required, but was not specified."""

    code = "ApiVersionUnspecified"

    def to_body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "innerError": None}}


def require_api_version(request: Request) -> str:
    version = request.query_params.get("api-version")
    if not version:
        raise ApiVersionUnspecified()
    return version


def _headers(request: Request) -> dict[str, str]:
    cv = base64.b64encode(uuid.uuid4().bytes).decode("ascii")[:22]
    headers = {"MS-CV": f"{cv}.0"}
    started = request.scope.get("commgrid.started")
    if isinstance(started, float):
        headers["X-Processing-Time"] = f"{round((time.perf_counter() - started) * 1000)}ms"
    if request.headers.get("x-ms-return-client-request-id", "").lower() == "true":
        client_id = request.headers.get("x-ms-client-request-id")
        if client_id:
            headers["x-ms-client-request-id"] = client_id
    return headers


def begin(request: Request) -> None:
    """Mark the start of the request's processing (for `X-Processing-Time`)."""
    request.scope["commgrid.started"] = time.perf_counter()


def acs_json(request: Request, body: Any, status: int = 200) -> Response:
    """A JSON response as the service sends it (`application/json; charset=utf-8`, wire-facts: chat API)."""
    return Response(orjson.dumps(body), status_code=status, headers=_headers(request),
                    media_type="application/json; charset=utf-8")


def acs_empty(request: Request, status: int = 204) -> Response:
    return Response(status_code=status, headers=_headers(request))
