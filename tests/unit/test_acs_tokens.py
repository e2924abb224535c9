"""User access tokens: claims, SDK decodability, verification and scopes (docs/wire-facts.md, User access tokens)."""

from __future__ import annotations

import base64
import json
import random
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from azure.communication.chat import CommunicationTokenCredential

from commgrid.acs.tokens import (
    GRANTS,
    Permission,
    Scope,
    TokenIssuer,
    allows,
    parse_scopes,
    require,
)
from commgrid.errors import Forbidden, InvalidInput, Unauthorized

RESOURCE = "fac4607d-d2d0-40e5-84df-6f32ebd1251a"
SECRET = b"commgrid-test-secret-0123456789abcdef"
NOW = datetime(2026, 11, 22, 14, 31, 34, tzinfo=UTC)


def _user() -> str:
    return f"8:acs:{RESOURCE}_{uuid.uuid4()}"


def _payload(token: str) -> dict:
    """Decode the payload exactly as the Python SDKs do (`_shared/utils.py::create_access_token`)."""
    return json.loads(base64.b64decode(token.split(".")[1] + "==").decode("ascii"))


@pytest.fixture
def issuer() -> TokenIssuer:
    return TokenIssuer(SECRET, RESOURCE)


def test_claims_follow_the_real_service(issuer: TokenIssuer) -> None:
    user = _user()
    token, expires_on = issuer.issue(user, ["chat", "voip"], timedelta(hours=2), now=NOW)
    claims = _payload(token)
    iat = int(NOW.timestamp())
    assert claims == {
        "skypeid": user.removeprefix("8:"),
        "scp": 1792,
        "csi": str(iat),
        "exp": iat + 7200,
        "acsScope": "chat,voip",
        "resourceId": RESOURCE,
        "iat": iat,
        "gen": 0,
    }
    assert expires_on == NOW + timedelta(hours=2)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_generation_round_trips_for_revocation(issuer: TokenIssuer) -> None:
    token, _ = issuer.issue(_user(), ["chat"], now=NOW, generation=3)
    assert issuer.verify(token, NOW).generation == 3


def test_resource_location_is_added_when_configured() -> None:
    token, _ = TokenIssuer(SECRET, RESOURCE, "unitedstates").issue(_user(), ["chat"], now=NOW)
    assert _payload(token)["resourceLocation"] == "unitedstates"


def test_the_chat_sdk_credential_reads_the_expiry(issuer: TokenIssuer) -> None:
    token, expires_on = issuer.issue(_user(), ["chat"], timedelta(minutes=90))
    access = CommunicationTokenCredential(token).get_token()
    assert access.token == token
    assert access.expires_on == int(expires_on.timestamp())


def test_many_tokens_all_decode_with_the_sdks_standard_base64() -> None:
    """Random ids, scopes, lifetimes and locations: no payload ever holds `-` or `_` (wire-facts: tokens)."""
    rng = random.Random(1234)
    scopes = [s.value for s in Scope]
    for _ in range(400):
        location = rng.choice([None, "europe_~/?>"])
        issuer = TokenIssuer(SECRET, str(uuid.UUID(int=rng.getrandbits(128))), location)
        chosen = rng.sample(scopes, rng.randint(1, len(scopes)))
        token, expires_on = issuer.issue(_user(), chosen, timedelta(minutes=rng.randint(60, 1440)))
        payload = token.split(".")[1]
        assert "-" not in payload and "_" not in payload
        assert CommunicationTokenCredential(token).get_token().expires_on == int(expires_on.timestamp())


def test_the_escaped_characters_are_exactly_those_that_can_yield_dash_or_underscore() -> None:
    """An ASCII character can produce base64url `-`/`_` at some alignment iff the issuer escapes it."""
    from commgrid.acs.tokens import _BASE64URL_HAZARDS

    def hazardous(ch: str) -> bool:
        encodings = (base64.urlsafe_b64encode(("ab"[:pad] + ch * 3 + "xyz").encode()) for pad in range(3))
        return any(b"-" in e or b"_" in e for e in encodings)

    escaped = {chr(code) for code in _BASE64URL_HAZARDS}
    assert {chr(c) for c in range(0x20, 0x80) if hazardous(chr(c))} == escaped


def test_verify_returns_the_claims(issuer: TokenIssuer) -> None:
    user = _user()
    token, expires_on = issuer.issue(user, ["chat.join", "voip"], timedelta(hours=1), now=NOW)
    claims = issuer.verify(token, NOW + timedelta(minutes=59))
    assert claims.user_id == user
    assert claims.scopes == (Scope.CHAT_JOIN, Scope.VOIP)
    assert claims.issued_at == NOW
    assert claims.expires_on == expires_on
    assert claims.resource_id == RESOURCE


def _reason(raised: pytest.ExceptionInfo[Unauthorized]) -> str:
    body = raised.value.to_body()["error"]
    assert raised.value.status == 401
    assert (body["code"], body["message"]) == ("Unauthorized", "Request is not authorized.")
    return body["details"][0]["code"]


def test_an_expired_token_is_rejected(issuer: TokenIssuer) -> None:
    token, expires_on = issuer.issue(_user(), ["chat"], timedelta(hours=1), now=NOW)
    with pytest.raises(Unauthorized) as raised:
        issuer.verify(token, expires_on)
    assert _reason(raised) == "TokenExpired"


def test_a_token_from_another_secret_is_rejected(issuer: TokenIssuer) -> None:
    other = TokenIssuer(b"another-secret-of-sufficient-length!", RESOURCE)
    token, _ = other.issue(_user(), ["chat"], now=NOW)
    with pytest.raises(Unauthorized) as raised:
        issuer.verify(token, NOW)
    assert _reason(raised) == "InvalidSignature"


def test_a_tampered_payload_is_rejected(issuer: TokenIssuer) -> None:
    token, _ = issuer.issue(_user(), ["chat.join.limited"], now=NOW)
    header, _, signature = token.split(".")
    claims = _payload(token) | {"acsScope": "chat"}
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    with pytest.raises(Unauthorized) as raised:
        issuer.verify(f"{header}.{forged}.{signature}", NOW)
    assert _reason(raised) == "InvalidSignature"


def test_a_token_for_another_resource_is_rejected() -> None:
    token, _ = TokenIssuer(SECRET, "other-resource").issue(_user(), ["chat"], now=NOW)
    with pytest.raises(Unauthorized) as raised:
        TokenIssuer(SECRET, RESOURCE).verify(token, NOW)
    assert _reason(raised) == "InvalidToken"


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b.c", "a.b", "eyJhbGciOiJub25lIn0.eyJleHAiOjF9.", "eyJhbGciOiJub25lIn0.eyJleHAiOjF9.x"],
)
def test_malformed_tokens_are_rejected(issuer: TokenIssuer, token: str) -> None:
    with pytest.raises(Unauthorized) as raised:
        issuer.verify(token, NOW)
    assert _reason(raised) == "InvalidToken"


def test_a_token_without_our_claims_is_rejected(issuer: TokenIssuer) -> None:
    token = jwt.encode({"exp": int(NOW.timestamp()) + 60}, SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized):
        issuer.verify(token, NOW)


def test_issued_at_lets_the_caller_check_revocation(issuer: TokenIssuer) -> None:
    token, _ = issuer.issue(_user(), ["chat"], now=NOW)
    revoked_before = NOW + timedelta(seconds=1)
    assert issuer.verify(token, NOW + timedelta(minutes=5)).issued_at < revoked_before


def test_parse_scopes_validates_and_dedupes() -> None:
    assert parse_scopes(["chat", "voip", "chat"]) == (Scope.CHAT, Scope.VOIP)
    with pytest.raises(InvalidInput) as raised:
        parse_scopes(["chat", "sms"])
    assert raised.value.code == "ValidationError"
    assert "'sms'" in raised.value.message


def test_issue_rejects_unknown_scopes(issuer: TokenIssuer) -> None:
    with pytest.raises(InvalidInput):
        issuer.issue(_user(), ["admin"])


P = Permission
EXPECTED = {
    Scope.CHAT: {P.CHAT, P.CREATE_THREAD, P.UPDATE_THREAD, P.DELETE_THREAD, P.MANAGE_PARTICIPANTS},
    Scope.CHAT_JOIN: {P.CHAT, P.MANAGE_PARTICIPANTS},  # cannot create, delete or update threads
    Scope.CHAT_JOIN_LIMITED: {P.CHAT},  # nor add or remove participants
    Scope.VOIP: {P.START_CALL, P.JOIN_CALL},
    Scope.VOIP_JOIN: {P.JOIN_CALL},  # cannot start new calls
}


@pytest.mark.parametrize("scope", list(Scope))
@pytest.mark.parametrize("permission", list(Permission))
def test_what_each_scope_allows(scope: Scope, permission: Permission) -> None:
    assert allows([scope], permission) is (permission in EXPECTED[scope])


def test_every_scope_has_grants() -> None:
    assert set(GRANTS) == set(Scope)


def test_require_raises_the_chat_specs_403(issuer: TokenIssuer) -> None:
    token, _ = issuer.issue(_user(), ["chat.join"], now=NOW)
    claims = issuer.verify(token, NOW)
    require(claims, Permission.MANAGE_PARTICIPANTS)
    with pytest.raises(Forbidden) as raised:
        require(claims, Permission.CREATE_THREAD)
    assert raised.value.status == 403
    assert raised.value.message == "User is not allowed to perform specified action."
