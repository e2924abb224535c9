"""The official azure-communication-identity SDK against a real `commgrid serve` over HTTPS, and the HMAC
authentication every identity request goes through (docs/wire-facts.md, HMAC signatures; the Identity spec)."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from azure.communication.chat import ChatClient, CommunicationTokenCredential
from azure.communication.identity import (
    CommunicationIdentityClient,
    CommunicationTokenScope,
    CommunicationUserIdentifier,
)
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

from commgrid.acs.hmac_auth import rfc1123
from tests.acceptance.acs_helpers import GUID, Acs
from tests.support import ServerProcess

USER_ID = re.compile(rf"^8:acs:{GUID}_00000008-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}$")
EMPTY_HASH = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


@pytest.fixture(scope="module")
def acs(server: ServerProcess) -> Acs:
    return Acs(server)


@pytest.fixture(scope="module")
def client(acs: Acs) -> CommunicationIdentityClient:
    return CommunicationIdentityClient.from_connection_string(acs.connection_string, connection_verify=acs.ca)


def _payload(token: str) -> dict:
    """The JWT payload, decoded the way the SDK does: standard base64 (wire-facts: tokens)."""
    part = token.split(".")[1]
    assert "-" not in part and "_" not in part, "the SDK's standard b64decode would reject this token"
    return json.loads(base64.b64decode(part + "==").decode("ascii"))


def _expires(value: str) -> datetime:
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}\+00:00$", value), value
    return datetime.fromisoformat(value[:26] + value[27:])


def _chat(acs: Acs, token: str) -> ChatClient:
    return ChatClient(acs.endpoint, CommunicationTokenCredential(token), connection_verify=acs.ca)


def _can_chat(acs: Acs, token: str) -> bool:
    try:
        next(iter(_chat(acs, token).list_chat_threads().by_page()), None)
    except ClientAuthenticationError:
        return False
    return True


def test_create_user_without_token(client: CommunicationIdentityClient) -> None:
    user = client.create_user()
    assert USER_ID.match(user.properties["id"]), user.properties
    assert user.raw_id == user.properties["id"]


def test_create_user_and_token_with_scopes_and_expiry(acs: Acs, client: CommunicationIdentityClient) -> None:
    user, token = client.create_user_and_token(
        [CommunicationTokenScope.CHAT, CommunicationTokenScope.VOIP], token_expires_in=timedelta(hours=2))
    expires = _expires(token.expires_on)  # SDK 1.5.0 hands back the wire string
    assert abs(expires - (datetime.now(UTC) + timedelta(hours=2))) < timedelta(minutes=1)
    claims = _payload(token.token)
    assert claims["skypeid"] == user.properties["id"].removeprefix("8:")
    assert claims["acsScope"] == "chat,voip" and claims["exp"] == int(expires.timestamp())
    assert claims["resourceId"] == user.properties["id"][6:42]
    # The SDK's credential parses it, and the chat API accepts it.
    assert CommunicationTokenCredential(token.token).get_token().expires_on == claims["exp"]
    assert _can_chat(acs, token.token)


def test_issue_token_default_expiry_and_scopes(client: CommunicationIdentityClient) -> None:
    user = client.create_user()
    token = client.get_token(user, [CommunicationTokenScope.CHAT_JOIN, "voip.join"])
    assert abs(_expires(token.expires_on) - (datetime.now(UTC) + timedelta(hours=24))) < timedelta(minutes=1)
    assert _payload(token.token)["acsScope"] == "chat.join,voip.join"


@pytest.mark.parametrize("minutes", [59, 1441])
def test_expiry_outside_60_to_1440_minutes(client: CommunicationIdentityClient, minutes: int) -> None:
    user = client.create_user()
    for call in (lambda: client.get_token(user, ["chat"], token_expires_in=timedelta(minutes=minutes)),
                 lambda: client.create_user_and_token(["chat"], token_expires_in=timedelta(minutes=minutes))):
        with pytest.raises(HttpResponseError) as raised:
            call()
        assert raised.value.status_code == 400
        assert raised.value.error.code == "ValidationError" and raised.value.error.target == "ExpiresInMinutes"
        assert raised.value.error.message == (f"ExpiresInMinutes value {minutes} is invalid. Value must be within"
                                              " the [60, 1440] interval.")


def test_issue_token_needs_valid_scopes(client: CommunicationIdentityClient) -> None:
    user = client.create_user()
    for scopes, text in (([], "Scopes: The Scopes field is required."), (["chat", "sms"], "'sms'")):
        with pytest.raises(HttpResponseError) as raised:
            client.get_token(user, scopes)
        assert raised.value.status_code == 400 and raised.value.error.code == "ValidationError"
        assert text in raised.value.error.message and raised.value.error.target == "Scopes"


def test_revoke_tokens_invalidates_earlier_tokens_only(acs: Acs, client: CommunicationIdentityClient) -> None:
    user, before = client.create_user_and_token(["chat"])
    assert _can_chat(acs, before.token)
    client.revoke_tokens(user)
    assert not _can_chat(acs, before.token)
    after = client.get_token(user, ["chat"])
    assert _can_chat(acs, after.token)


def test_delete_user_ends_its_tokens(acs: Acs, client: CommunicationIdentityClient) -> None:
    user, token = client.create_user_and_token(["chat"])
    client.delete_user(user)
    assert not _can_chat(acs, token.token)
    for call in (lambda: client.delete_user(user), lambda: client.get_token(user, ["chat"]),
                 lambda: client.revoke_tokens(user)):
        with pytest.raises(ResourceNotFoundError) as raised:
            call()
        assert raised.value.error.message == "Provided identity doesn't exist."
    with pytest.raises(ResourceNotFoundError):
        client.get_token(CommunicationUserIdentifier("8:acs:unknown_00000008-0000-0000-0000-000000000000"), ["chat"])


def test_teams_token_exchange_is_a_clear_error(client: CommunicationIdentityClient) -> None:
    with pytest.raises(HttpResponseError) as raised:
        client.get_token_for_teams_user("aad-token", "app-id", "user-oid")
    assert raised.value.status_code == 400 and raised.value.error.code == "TeamsInteropNotSupported"


# --- wire details ----------------------------------------------------------------------------------------


def test_raw_create_and_issue_wire(acs: Acs) -> None:
    created = acs.request("POST", "/identities?api-version=2023-10-01",
                          headers={"x-ms-client-request-id": "abc", "x-ms-return-client-request-id": "true"})
    assert created.status_code == 201, created.text
    assert created.headers["content-type"].startswith("application/json")
    assert created.headers["x-ms-client-request-id"] == "abc" and created.headers["ms-cv"]
    user_id = created.json()["identity"]["id"]
    assert created.json() == {"identity": {"id": user_id}}
    # Older SDKs send explicit nulls (Identity spec): treated as absent.
    nulls = acs.request("POST", "/identities?api-version=2021-03-07",
                        {"createTokenWithScopes": None, "expiresInMinutes": None})
    assert nulls.status_code == 201 and list(nulls.json()) == ["identity"]
    path = f"/identities/{quote(user_id, safe='')}/:issueAccessToken?api-version=2022-10-01"
    issued = acs.request("POST", path, {"scopes": ["chat"], "expiresInMinutes": 60})
    assert issued.status_code == 200 and list(issued.json()) == ["token", "expiresOn"]
    revoke = acs.request("POST", f"/identities/{quote(user_id, safe='')}/:revokeAccessTokens?api-version=2023-10-01")
    assert revoke.status_code == 204 and revoke.content == b""


def test_missing_api_version(acs: Acs) -> None:
    response = acs.request("POST", "/identities")
    assert response.status_code == 400
    assert response.json() == {"error": {"code": "ApiVersionUnspecified",
                                         "message": "An API version is required, but was not specified.",
                                         "innerError": None}}


def test_wrong_access_key_is_401_denied(acs: Acs) -> None:
    wrong = base64.b64encode(b"not the key" * 3).decode()
    client = CommunicationIdentityClient(acs.endpoint, AzureKeyCredential(wrong), connection_verify=acs.ca)
    with pytest.raises(ClientAuthenticationError) as raised:
        client.create_user()
    assert raised.value.status_code == 401 and raised.value.error.code == "Denied"
    response = acs.request("POST", "/identities?api-version=2023-10-01", key=wrong)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "Denied"
    assert response.json()["error"]["message"] == "Denied by the resource provider."


def test_hmac_failures(acs: Acs) -> None:
    path = "/identities?api-version=2023-10-01"
    unsigned = acs.request("POST", path, sign=False)
    assert unsigned.status_code == 401 and unsigned.json()["error"]["code"] == "Denied"
    # The body hashed by the client differs from the body sent.
    tampered = acs.request("POST", path, headers={"x-ms-content-sha256": EMPTY_HASH}, raw=b'{"a": 1}')
    assert tampered.status_code == 401
    assert tampered.json()["error"] == {"code": "Denied",
                                        "message": "Request 'x-ms-content-sha256' differs from generated content hash."}
    stale = acs.request("POST", path, now=datetime.now(UTC) - timedelta(minutes=30))
    assert stale.status_code == 401 and stale.json()["error"]["details"][0]["code"] == "RequestExpired"
    forged = acs.request("POST", path, headers={
        "x-ms-date": rfc1123(datetime.now(UTC)),
        "Authorization": "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=AAAA"})
    assert forged.status_code == 401 and forged.json()["error"]["details"][0]["code"] == "InvalidSignature"
