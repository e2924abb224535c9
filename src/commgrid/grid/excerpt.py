"""Reading a webhook's answer without trusting it: the handshake and delivery both read at most a bounded
excerpt of a response body."""

from __future__ import annotations

import aiohttp

#: How much of a webhook's response body is read: enough for a validation answer, never a streamed flood.
RESPONSE_EXCERPT = 64 * 1024


async def read_excerpt(response: aiohttp.ClientResponse, limit: int = RESPONSE_EXCERPT) -> bytes:
    """At most `limit` bytes of a response body; the rest is never read (the connection is then closed)."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await response.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
