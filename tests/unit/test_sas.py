"""SAS tokens as real clients make them (https://learn.microsoft.com/azure/event-grid/authenticate-with-access-keys-shared-access-signatures)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from urllib.parse import quote_plus

import pytest
from azure.eventgrid import generate_sas

from commgrid.errors import Unauthorized
from commgrid.grid.auth import authenticate, parse_expiry, verify_sas

KEY = base64.b64encode(b"k" * 32).decode()
OTHER = base64.b64encode(b"o" * 32).decode()
URL = "https://127.0.0.1:7443/topics/orders/api/events"
NOW = datetime(2030, 1, 1, tzinfo=UTC)


def dotnet_token(resource: str, expiry: str, key: str) -> str:
    """The shape of the .NET sample: HttpUtility.UrlEncode (lower-case escapes) and an en-US date."""
    r = quote_plus(resource).replace("%3A", "%3a").replace("%2F", "%2f")
    e = quote_plus(expiry)
    signed = f"r={r}&e={e}"
    sig = base64.b64encode(hmac.new(base64.b64decode(key), signed.encode(), hashlib.sha256).digest()).decode()
    return f"{signed}&s={quote_plus(sig)}"


def test_python_sdk_token_is_accepted() -> None:
    verify_sas(generate_sas(URL, KEY, NOW + timedelta(hours=1)), URL + "?api-version=2018-01-01", (OTHER, KEY), NOW)


def test_dotnet_style_token_is_accepted() -> None:
    verify_sas(dotnet_token(URL, "1/1/2030 1:00:00 AM", KEY), URL, (KEY,), NOW)


def test_expired_token_is_rejected() -> None:
    with pytest.raises(Unauthorized, match="expired"):
        verify_sas(generate_sas(URL, KEY, NOW - timedelta(seconds=1)), URL, (KEY,), NOW)


def test_token_for_another_topic_is_rejected() -> None:
    token = generate_sas(URL.replace("orders", "other"), KEY, NOW + timedelta(hours=1))
    with pytest.raises(Unauthorized, match="resource"):
        verify_sas(token, URL, (KEY,), NOW)


def test_token_signed_by_another_key_is_rejected() -> None:
    with pytest.raises(Unauthorized, match="signature"):
        verify_sas(generate_sas(URL, OTHER, NOW + timedelta(hours=1)), URL, (KEY,), NOW)


def test_tampered_expiry_is_rejected() -> None:
    token = generate_sas(URL, KEY, NOW + timedelta(hours=1)).replace("2030", "2031")
    with pytest.raises(Unauthorized):
        verify_sas(token, URL, (KEY,), NOW)


@pytest.mark.parametrize("token", ["", "r=a&e=b", "garbage"])
def test_malformed_tokens_are_rejected(token: str) -> None:
    with pytest.raises(Unauthorized):
        verify_sas(token, URL, (KEY,), NOW)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2030-01-01 01:00:00+00:00", datetime(2030, 1, 1, 1, tzinfo=UTC)),
        ("2030-01-01T01:00:00Z", datetime(2030, 1, 1, 1, tzinfo=UTC)),
        ("1/1/2030 1:00:00 PM", datetime(2030, 1, 1, 13, tzinfo=UTC)),
    ],
)
def test_expiry_formats(text: str, expected: datetime) -> None:
    assert parse_expiry(text) == expected


def test_authenticate_header_order_and_key_match() -> None:
    authenticate(URL, {"aeg-sas-key": KEY}, {}, (KEY, OTHER), NOW)
    authenticate(URL, {}, {"aeg-sas-key": OTHER}, (KEY, OTHER), NOW)
    token = generate_sas(URL, KEY, NOW + timedelta(hours=1))
    authenticate(URL, {"aeg-sas-token": token}, {}, (KEY,), NOW)
    authenticate(URL, {"authorization": f"SharedAccessSignature {token}"}, {}, (KEY,), NOW)
    with pytest.raises(Unauthorized):
        authenticate(URL, {"aeg-sas-key": "nope"}, {}, (KEY,), NOW)
    with pytest.raises(Unauthorized):
        authenticate(URL, {"authorization": "Bearer x"}, {}, (KEY,), NOW)
