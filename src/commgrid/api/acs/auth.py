"""Request authentication for the Communication Services APIs: HMAC for identity and SMS, user tokens for chat."""

from __future__ import annotations

import hashlib

from starlette.requests import Request

from commgrid.acs.hmac_auth import verify_content
from commgrid.acs.resource import CommunicationResource
from commgrid.acs.tokens import TokenClaims
from commgrid.api.bodies import read_limited
from commgrid.errors import PayloadTooLarge, Unauthorized


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
    try:
        signed_hash = resource(request).check_signature(request.method, path_and_query(request), request.headers)
    except Unauthorized as denied:
        raise await _denial(request, denied) from None
    body = await read_limited(request)
    verify_content(signed_hash, hashlib.sha256(body))
    return body


async def _denial(request: Request, denied: Unauthorized) -> Unauthorized:
    """The service reports a body that differs from its signed hash before a bad signature; to word the 401 the
    same way, a body within the size limit is read (a larger one is not: the signature's 401 stands)."""
    claimed = request.headers.get("x-ms-content-sha256")
    if claimed is None:
        return denied
    try:
        verify_content(claimed, hashlib.sha256(await read_limited(request)))
    except PayloadTooLarge:
        return denied
    except Unauthorized as mismatch:
        return mismatch
    return denied


async def user(request: Request) -> TokenClaims:
    """The user calling with `Authorization: Bearer <token>`."""
    return await resource(request).caller(request.headers.get("authorization"))
