"""Request bodies read with a size limit, refused as soon as they pass it (declared or, when chunked, streamed)."""

from __future__ import annotations

from starlette.requests import Request

from commgrid.errors import PayloadTooLarge


def _too_large(size: str, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body ({size} bytes) exceeds the maximum of {limit} bytes.",
                           code="RequestEntityTooLarge")


async def limited_body(request: Request, limit: int) -> bytes:
    """The body, at most `limit` bytes; `PayloadTooLarge` (413) otherwise, before the rest is read."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(declared, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(f"more than {limit}", limit)
        chunks.append(chunk)
    return b"".join(chunks)
