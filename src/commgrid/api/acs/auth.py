"""Request authentication for the Communication Services APIs: HMAC for identity and SMS, user tokens for chat."""

from __future__ import annotations

import hashlib

from starlette.requests import Request

from commgrid.acs.hmac_auth import verify_content
from commgrid.acs.resource import CommunicationResource
from commgrid.acs.tokens import TokenClaims
from commgrid.api.bodies import read_limited


def resource(request: Request) -> CommunicationResource:
    return request.app.state.runtime.acs


def path_and_query(request: Request) -> str:
    """The request target exactly as sent (still percent-encoded): what the client signed."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    return (raw + (b"?" + query if query else b"")).decode("latin-1")


async def signed_body(request: Request) -> bytes:
    """The body of an HMAC-signed request: the signed headers are checked first, then the body is read (up to
    the size limit) and compared with the signed content hash."""
    signed_hash = resource(request).check_signature(request.method, path_and_query(request), request.headers)
    body = await read_limited(request)
    verify_content(signed_hash, hashlib.sha256(body))
    return body


async def user(request: Request) -> TokenClaims:
    """The user calling with `Authorization: Bearer <token>`."""
    return await resource(request).caller(request.headers.get("authorization"))
