"""Request bodies read with a size limit: refused as soon as they pass it, never buffered whole first."""

from __future__ import annotations

from starlette.requests import Request

from commgrid.errors import PayloadTooLarge

#: Communication Services request bodies (identity, SMS, chat) are small JSON documents; a chat message is at
#: most 28 KB. Anything past this limit is refused before it is buffered.
MAX_ACS_BODY = 256 * 1024


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body exceeds the maximum of {limit} bytes.", code="RequestEntityTooLarge")


async def read_limited(request: Request, limit: int = MAX_ACS_BODY) -> bytes:
    """The body, refused with 413 as soon as its declared or streamed size passes `limit`."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)
