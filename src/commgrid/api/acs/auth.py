"""Request authentication for the Communication Services APIs: HMAC for identity and SMS, user tokens for chat."""

from __future__ import annotations

from starlette.requests import Request

from commgrid.acs.resource import CommunicationResource
from commgrid.acs.tokens import TokenClaims


def resource(request: Request) -> CommunicationResource:
    return request.app.state.runtime.acs


def path_and_query(request: Request) -> str:
    """The request target exactly as sent (still percent-encoded): what the client signed."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    return (raw + (b"?" + query if query else b"")).decode("latin-1")


async def signed_body(request: Request) -> bytes:
    """The body of an HMAC-signed request, after checking its signature with either access key."""
    body = await request.body()
    resource(request).check_hmac(request.method, path_and_query(request), request.headers, body)
    return body


async def user(request: Request) -> TokenClaims:
    """The user calling with `Authorization: Bearer <token>`."""
    return await resource(request).caller(request.headers.get("authorization"))
