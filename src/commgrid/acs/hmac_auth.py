"""ACS access-key (HMAC-SHA256) request authentication, as the SMS and Identity services check it.

The client signs `METHOD\\n<path and query>\\n<x-ms-date>;<host>;<x-ms-content-sha256>` with the
base64-decoded access key and sends
`Authorization: HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=<b64>`
(https://learn.microsoft.com/rest/api/communication/authentication, `_shared/policy.py::HMACCredentialsPolicy`
of the Python SDKs, and docs/wire-facts.md, HMAC signatures).

The verifier reads the header list from `SignedHeaders` instead of assuming it, so clients that sign `date`
(SDKs before azure-sdk-for-python#19396 switched to `x-ms-date`) pass too, and it tries the path and host
variants real SDK builds produce (wire-facts: HMAC step 4).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import unquote, urlsplit

from commgrid.errors import Detail, Unauthorized

HMAC_SCHEME = "HMAC-SHA256"
SIGNED_HEADERS = ("x-ms-date", "host", "x-ms-content-sha256")
# App Configuration's documented window; ACS documents none (wire-facts: HMAC step 5).
DEFAULT_MAX_SKEW = timedelta(minutes=15)

# The real service's 401 bodies (wire-facts: HMAC): the hash mismatch has its own message, everything else
# is the generic denial. `details` say which check failed, for people debugging their own signer.
_DENIED = "Denied by the resource provider."
_HASH_MISMATCH = "Request 'x-ms-content-sha256' differs from generated content hash."
_DEFAULT_PORT = re.compile(r":(443|80)$")


def content_hash(body: bytes) -> str:
    """base64(SHA-256(body)); always over the raw bytes, never a re-serialisation (wire-facts: HMAC step 2)."""
    return base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def compute_signature(string_to_sign: str, access_key_b64: str) -> str:
    """base64(HMAC-SHA256(b64decode(key), string_to_sign))."""
    digest = hmac.new(base64.b64decode(access_key_b64), string_to_sign.encode("utf-8"), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode("ascii")


def string_to_sign(method: str, path_and_query: str, signed_values: Sequence[str]) -> str:
    """`METHOD\\n<path and query>\\n<value;value;...>` in `SignedHeaders` order."""
    return f"{method.upper()}\n{path_and_query}\n{';'.join(signed_values)}"


def rfc1123(moment: datetime) -> str:
    """`Sun, 22 Nov 2026 14:31:34 GMT`, locale-independent."""
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def sign_request(
    method: str, url: str, body: bytes, access_key_b64: str, now: datetime | None = None
) -> dict[str, str]:
    """Headers that authenticate a request to `url` the way the SDKs do (wire-facts: HMAC).

    `url` is used as written: its path and query must already be percent-encoded as they go on the wire.
    The caller sends `Host` equal to the URL's netloc (HTTP clients do this by default).
    """
    parts = urlsplit(url)
    path_and_query = parts.path + (f"?{parts.query}" if parts.query else "")
    date = rfc1123(now or datetime.now(UTC))
    digest = content_hash(body)
    signature = compute_signature(
        string_to_sign(method, path_and_query, (date, parts.netloc, digest)), access_key_b64
    )
    return {
        "x-ms-date": date,
        "x-ms-content-sha256": digest,
        "Authorization": f"{HMAC_SCHEME} SignedHeaders={';'.join(SIGNED_HEADERS)}&Signature={signature}",
    }


def verify_hmac(
    method: str,
    path_and_query: str,
    headers: Mapping[str, str],
    body: bytes,
    access_key_b64: str | Sequence[str],
    now: datetime,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
) -> None:
    """Check an HMAC-signed request; raise `Unauthorized` (code `Denied`) when it is not authentic.

    Parameters
    ----------
    path_and_query:
        The request target exactly as received, still percent-encoded (wire-facts: HMAC step 3).
    headers:
        Request headers; names are matched case-insensitively.
    body:
        The raw request body.
    access_key_b64:
        One key or several (primary and secondary); any of them may have signed.
    now:
        The server's clock, compared with the signed date (at most `max_skew` apart).
    """
    signed_hash = verify_signature(method, path_and_query, headers, access_key_b64, now, max_skew)
    verify_content(signed_hash, hashlib.sha256(body))


def verify_signature(
    method: str,
    path_and_query: str,
    headers: Mapping[str, str],
    access_key_b64: str | Sequence[str],
    now: datetime,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
) -> str:
    """Check the signed headers of a request, before its body is read; returns the signed content hash.

    The signature covers `x-ms-content-sha256`, so a request signed with no key is refused without reading
    a byte of its body; `verify_content` then checks the body against the returned hash.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    signed_names, signature = _parse_authorization(lowered.get("authorization", ""))
    _check_headers(lowered, signed_names, now, max_skew)
    keys = [access_key_b64] if isinstance(access_key_b64, str) else list(access_key_b64)
    for candidate in _candidate_strings(method, path_and_query, lowered, signed_names):
        if any(_matches(candidate, key, signature) for key in keys):
            return lowered["x-ms-content-sha256"]
    raise _denied("InvalidSignature", "The request signature does not match any access key.")


def verify_content(signed_hash: str, digest: hashlib._Hash) -> None:
    """The body (hashed into `digest`) must be the one the client signed."""
    actual = base64.b64encode(digest.digest()).decode("ascii")
    if not hmac.compare_digest(signed_hash.encode(), actual.encode()):
        raise Unauthorized(_HASH_MISMATCH, code="Denied")


def _denied(reason: str, explanation: str) -> Unauthorized:
    return Unauthorized(_DENIED, code="Denied", details=[Detail(reason, explanation)])


def _parse_authorization(value: str) -> tuple[list[str], str]:
    """Split `HMAC-SHA256 SignedHeaders=a;b;c&Signature=xyz` into (["a","b","c"], "xyz")."""
    scheme, _, params = value.strip().partition(" ")
    if scheme.upper() != HMAC_SCHEME:
        raise _denied("MissingAuthorization", f"Expected an '{HMAC_SCHEME}' Authorization header.")
    fields = dict(part.partition("=")[::2] for part in params.strip().split("&"))
    names = [n.strip().lower() for n in fields.get("SignedHeaders", "").split(";") if n.strip()]
    signature = fields.get("Signature", "")
    has_date = "x-ms-date" in names or "date" in names
    if not signature or not has_date or not {"host", "x-ms-content-sha256"} <= set(names):
        raise _denied(
            "InvalidAuthorization",
            "SignedHeaders must cover x-ms-date (or date), host and x-ms-content-sha256, with a Signature.",
        )
    return names, signature


def _check_headers(
    headers: Mapping[str, str], signed_names: list[str], now: datetime, max_skew: timedelta
) -> None:
    """Every signed header must be present, and the signed date within `max_skew` of `now`."""
    missing = [name for name in signed_names if name not in headers]
    if missing:
        raise _denied("MissingHeader", f"Signed header(s) missing from the request: {', '.join(missing)}.")
    raw_date = headers["x-ms-date"] if "x-ms-date" in signed_names else headers["date"]
    try:
        signed_at = parsedate_to_datetime(raw_date)
    except (TypeError, ValueError):
        raise _denied("InvalidDate", f"The signed date {raw_date!r} is not an RFC 1123 date.") from None
    if signed_at.tzinfo is None:
        signed_at = signed_at.replace(tzinfo=UTC)
    if abs(now - signed_at) > max_skew:
        raise _denied(
            "RequestExpired",
            f"The signed date {raw_date!r} is more than {max_skew} away from the server clock.",
        )


def _candidate_strings(
    method: str, path_and_query: str, headers: Mapping[str, str], signed_names: list[str]
) -> Iterator[str]:
    """Every string-to-sign a genuine SDK build could have produced for this request."""
    for path in _path_variants(path_and_query):
        for host in _host_variants(headers["host"]):
            values = [host if name == "host" else headers[name] for name in signed_names]
            yield string_to_sign(method, path, values)


def _path_variants(path_and_query: str) -> list[str]:
    """As received; `unquote`-d (aiohttp/yarl, `decode_url=True`, wire-facts: HMAC 4a); without the leading `/` (old
    SDKs, 4c)."""
    decoded = unquote(path_and_query)
    variants = [path_and_query, decoded, path_and_query.removeprefix("/"), decoded.removeprefix("/")]
    return list(dict.fromkeys(variants))


def _host_variants(host: str) -> list[str]:
    """The Host header; with/without a default port (clients drop `:443` from Host but sign the endpoint's
    netloc); with a trailing `/` (`Client("http://h:p/", key)` signs `h:p/`, wire-facts: HMAC 4b)."""
    hosts = [host]
    if _DEFAULT_PORT.search(host):
        hosts.append(_DEFAULT_PORT.sub("", host))
    elif not re.search(r":\d+$", host):
        hosts += [f"{host}:443", f"{host}:80"]
    return list(dict.fromkeys(hosts + [f"{h}/" for h in hosts]))


def _matches(candidate: str, access_key_b64: str, signature: str) -> bool:
    try:
        expected = compute_signature(candidate, access_key_b64)
    except (binascii.Error, ValueError):
        return False  # a malformed configured key never matches
    return hmac.compare_digest(expected.encode(), signature.encode())
