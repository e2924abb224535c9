"""Standard Webhooks signatures on push deliveries (https://www.standardwebhooks.com/).

Each delivery of a subscription with signing enabled carries `webhook-id` (the same on every retry of that
batch), `webhook-timestamp` (POSIX seconds) and `webhook-signature`: `v1,<base64 HMAC-SHA256>` of
`id.timestamp.body` for each live secret, space-separated, so a receiver holding either secret of a rotation
verifies it (`standardwebhooks.Webhook(secret).verify(body, headers)`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

SECRET_BYTES = 32


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def signature_headers(keys: Sequence[bytes], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for `body`, signed with every key."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    signatures = " ".join("v1," + base64.b64encode(hmac.new(k, signed, hashlib.sha256).digest()).decode()
                          for k in keys)
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp), "webhook-signature": signatures}
