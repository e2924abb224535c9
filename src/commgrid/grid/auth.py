"""Publisher authentication for topics: access keys and SAS tokens (
https://learn.microsoft.com/azure/event-grid/authenticate-with-access-keys-shared-access-signatures)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import unquote, unquote_plus

from commgrid.errors import Unauthorized

_NO_CREDENTIALS = "The request did not contain a valid aeg-sas-key or aeg-sas-token."
_SAS_PREFIX = "sharedaccesssignature "
_DOTNET_FORMATS = ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %H:%M:%S")


def authenticate(
    url: str | Callable[[], str], headers: Mapping[str, str], query: Mapping[str, str], keys: tuple[str, ...],
    now: datetime,
) -> None:
    """Accept the request if it carries one of `keys` or a SAS token signed with one, else `Unauthorized`.

    `headers` must be case-insensitive (Starlette's are). Checked in the order Azure documents. `url` may be
    given as a function: only a SAS token needs it, and building it costs more than checking a key.
    """
    key = headers.get("aeg-sas-key") or query.get("aeg-sas-key")
    if key is not None:
        if any(k and hmac.compare_digest(key.encode(), k.encode()) for k in keys):
            return
        raise Unauthorized(_NO_CREDENTIALS)
    token = headers.get("aeg-sas-token")
    authorization = headers.get("authorization", "")
    if token is None and authorization.lower().startswith(_SAS_PREFIX):
        token = authorization[len(_SAS_PREFIX):]
    if token is None:
        raise Unauthorized(_NO_CREDENTIALS)
    verify_sas(token, url if isinstance(url, str) else url(), keys, now)


def verify_sas(token: str, url: str, keys: tuple[str, ...], now: datetime) -> None:
    """Check a `r=…&e=…&s=…` token: signature over the raw `r=…&e=…` text, expiry, and resource prefix."""
    parts = dict(p.split("=", 1) for p in token.strip().split("&") if "=" in p)
    if not {"r", "e", "s"} <= parts.keys():
        raise Unauthorized("The SAS token is malformed: it must contain r, e and s.")
    signed = f"r={parts['r']}&e={parts['e']}".encode()
    signature = unquote(parts["s"]).encode()
    if not any(k and hmac.compare_digest(signature, _sign(k, signed)) for k in keys):
        raise Unauthorized("The SAS token signature is invalid.")
    expiry = parse_expiry(unquote_plus(parts["e"]))
    if expiry <= now:
        raise Unauthorized(f"The SAS token expired at {expiry.isoformat()}.")
    resource = unquote_plus(parts["r"]).split("?", 1)[0].rstrip("/").lower()
    if not _same_resource(resource, url.split("?", 1)[0].lower()):
        raise Unauthorized(f"The SAS token is not valid for this resource: '{resource}'.")


def _sign(key: str, message: bytes) -> bytes:
    try:
        raw = base64.b64decode(key)
    except ValueError:
        raw = key.encode()
    return base64.b64encode(hmac.new(raw, message, hashlib.sha256).digest())


def _same_resource(resource: str, url: str) -> bool:
    """A token is valid for every URL its resource prefixes; scheme and host may differ behind a proxy."""
    if url.startswith(resource):
        return True
    strip = lambda u: u.split("://", 1)[-1].split("/", 1)[-1]  # noqa: E731
    return ("/" + strip(url)).startswith("/" + strip(resource))


def parse_expiry(text: str) -> datetime:
    """Parse the expiry formats real clients produce: ISO 8601, Python's str(datetime), .NET's en-US form."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = None
        for fmt in _DOTNET_FORMATS:
            try:
                parsed = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        raise Unauthorized(f"The SAS token expiry '{text}' is not a valid date/time.")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
