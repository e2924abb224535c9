"""Request bodies read with a size limit: refused as soon as they pass it, never buffered whole first."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from commgrid.errors import PayloadTooLarge

#: Communication Services request bodies (identity, SMS, chat) are small JSON documents; a chat message is at
#: most 28 KB. Anything past this limit is refused before it is buffered.
MAX_ACS_BODY = 256 * 1024


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body exceeds the maximum of {limit} bytes.", code="RequestEntityTooLarge")


def _check_declared(declared: str | None, limit: int) -> None:
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)


async def read_limited(request: Request, limit: int = MAX_ACS_BODY) -> bytes:
    """The body, refused with 413 as soon as its declared or streamed size passes `limit`."""
    _check_declared(request.headers.get("content-length"), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def receive_limited(receive: Receive, declared: str | None, limit: int) -> bytes:
    """`read_limited` for an ASGI endpoint without a `Request`: the body from `receive`, given the request's
    Content-Length header (`declared`); `ClientDisconnect` if the client goes away first, as Starlette raises."""
    _check_declared(declared, limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
