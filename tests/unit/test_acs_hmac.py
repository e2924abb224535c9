"""HMAC-SHA256 request verification against what the official SDKs really sign (docs/wire-facts.md, HMAC signatures).

Two sources of signed requests: the SDK clients sending over a loopback socket to a recorder (the exact bytes,
path encoding and Host header a server sees), and the SDKs' `HMACCredentialsPolicy` applied directly to an
azure-core request (for the variants and for tampering).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from azure.communication.identity import CommunicationIdentityClient, CommunicationUserIdentifier
from azure.communication.identity._shared import policy as identity_policy
from azure.communication.sms import SmsClient
from azure.communication.sms._shared import policy as sms_policy
from azure.core.credentials import AzureKeyCredential
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.pipeline.transport import HttpRequest

from commgrid.acs.hmac_auth import (
    compute_signature,
    content_hash,
    rfc1123,
    sign_request,
    string_to_sign,
    verify_hmac,
)
from commgrid.errors import Unauthorized

SIGNED = "x-ms-date;host;x-ms-content-sha256"
KEY = base64.b64encode(b"commgrid-test-access-key-32bytes").decode()
OTHER_KEY = base64.b64encode(b"some-other-access-key-of-32bytes").decode()
USER_ID = "8:acs:fac4607d-d2d0-40e5-84df-6f32ebd1251a_00000008-fcb1-d0e4-63b2-a43a0d0025a6"


# --- A loopback recorder for real SDK traffic -----------------------------------------------------


@dataclass
class Recorded:
    method: str
    target: str  # the request target as received, still percent-encoded
    headers: dict[str, str]
    body: bytes


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.server.recorded.append(Recorded(self.command, self.path, dict(self.headers.items()), body))
        status, payload = _canned_reply(self.command, self.path)
        data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_DELETE = do_GET = _handle

    def log_message(self, *args: object) -> None:
        pass


def _canned_reply(method: str, target: str) -> tuple[int, dict | None]:
    path = target.split("?")[0]
    if path == "/sms":
        item = {"to": "+14255550123", "messageId": "Outgoing_x", "httpStatusCode": 202, "successful": True}
        return 202, {"value": [item]}
    if path == "/identities":
        return 201, {"identity": {"id": USER_ID}}
    if path.endswith("/:issueAccessToken"):
        return 200, {"token": "a.b.c", "expiresOn": "2026-11-23T14:31:34.0000000+00:00"}
    return 204, None


@pytest.fixture(scope="module")
def recorder() -> Iterator[tuple[str, list[Recorded]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.recorded = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.recorded
    finally:
        server.shutdown()
        server.server_close()


def _verify(request: Recorded, key: str = KEY, now: datetime | None = None) -> None:
    verify_hmac(request.method, request.target, request.headers, request.body, key, now or datetime.now(UTC))


def test_sms_client_send_verifies(recorder: tuple[str, list[Recorded]]) -> None:
    endpoint, recorded = recorder
    recorded.clear()
    SmsClient(endpoint, AzureKeyCredential(KEY)).send("+18005550100", "+14255550123", "héllo", tag="t1")
    (request,) = recorded
    assert request.target == "/sms?api-version=2021-03-07"
    _verify(request)


def test_identity_client_calls_verify(recorder: tuple[str, list[Recorded]]) -> None:
    endpoint, recorded = recorder
    recorded.clear()
    client = CommunicationIdentityClient(endpoint, AzureKeyCredential(KEY))
    user = client.create_user()  # an empty body (wire-facts: HMAC step 2)
    client.get_token(user, ["chat"])  # an encoded id in the path, signed encoded (wire-facts: HMAC step 3)
    client.revoke_tokens(CommunicationUserIdentifier(USER_ID))
    client.delete_user(user)
    assert [r.method for r in recorded] == ["POST", "POST", "POST", "DELETE"]
    assert "/identities/8%3Aacs%3A" in recorded[1].target
    for request in recorded:
        _verify(request)


def test_real_traffic_fails_with_the_wrong_key(recorder: tuple[str, list[Recorded]]) -> None:
    endpoint, recorded = recorder
    recorded.clear()
    SmsClient(endpoint, KEY).send("+18005550100", "+14255550123", "hi")
    with pytest.raises(Unauthorized) as raised:
        _verify(recorded[0], OTHER_KEY)
    assert raised.value.to_body()["error"]["code"] == "Denied"


def test_any_of_several_keys_may_sign(recorder: tuple[str, list[Recorded]]) -> None:
    endpoint, recorded = recorder
    recorded.clear()
    SmsClient(endpoint, KEY).send("+18005550100", "+14255550123", "hi")
    verify_hmac(
        "POST", recorded[0].target, recorded[0].headers, recorded[0].body, [OTHER_KEY, KEY], datetime.now(UTC)
    )


# --- The SDK policy applied directly --------------------------------------------------------------


@dataclass
class Signed:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


def _sdk_sign(
    url: str, body: dict | None = None, *, policy_module=identity_policy, host: str | None = None, **policy_kw
) -> Signed:
    """Sign like the SDK pipeline does, then split the result into what a server receives."""
    endpoint = url.split("/", 3)
    request = HttpRequest("POST", url)
    if body is not None:
        request.set_json_body(body)
    policy = policy_module.HMACCredentialsPolicy(host or "/".join(endpoint[:3]), KEY, **policy_kw)
    policy.on_request(PipelineRequest(request, PipelineContext(None)))
    target = "/" + endpoint[3]
    headers = dict(request.headers) | {"Host": endpoint[2]}
    return Signed("POST", target, headers, (request.body or "").encode())


def _check(signed: Signed, *, key: str = KEY, now: datetime | None = None) -> None:
    verify_hmac(signed.method, signed.target, signed.headers, signed.body, key, now or datetime.now(UTC))


def _denied(signed: Signed, **kw) -> dict:
    with pytest.raises(Unauthorized) as raised:
        _check(signed, **kw)
    assert raised.value.status == 401
    return raised.value.to_body()["error"]


IDENTITY_URL = "http://127.0.0.1:8443/identities/8%3Aacs%3Axyz/:issueAccessToken?api-version=2023-10-01"


@pytest.mark.parametrize("policy_module", [identity_policy, sms_policy], ids=["identity", "sms"])
def test_sdk_policy_signatures_verify(policy_module) -> None:
    _check(_sdk_sign(IDENTITY_URL, {"scopes": ["chat"]}, policy_module=policy_module))


def test_a_changed_body_gets_the_services_content_hash_error() -> None:
    signed = _sdk_sign(IDENTITY_URL, {"scopes": ["chat"]})
    signed.body = b'{"scopes": ["voip"]}'
    assert _denied(signed) == {
        "code": "Denied",
        "message": "Request 'x-ms-content-sha256' differs from generated content hash.",
    }


def test_a_reserialised_body_does_not_verify() -> None:
    """The hash covers the raw bytes: `{"scopes": ["chat"]}` is not `{"scopes":["chat"]}` (wire-facts: HMAC step 2)."""
    signed = _sdk_sign(IDENTITY_URL, {"scopes": ["chat"]})
    signed.body = json.dumps(json.loads(signed.body), separators=(",", ":")).encode()
    assert _denied(signed)["code"] == "Denied"


def test_a_changed_path_is_denied() -> None:
    signed = _sdk_sign(IDENTITY_URL, {"scopes": ["chat"]})
    signed.target = signed.target.replace("xyz", "abc")
    error = _denied(signed)
    assert (error["code"], error["message"]) == ("Denied", "Denied by the resource provider.")
    assert error["details"][0]["code"] == "InvalidSignature"


def test_a_changed_query_is_denied() -> None:
    signed = _sdk_sign(IDENTITY_URL, {"scopes": ["chat"]})
    signed.target = signed.target.replace("2023-10-01", "2021-03-07")
    assert _denied(signed)["details"][0]["code"] == "InvalidSignature"


def test_a_changed_date_is_denied() -> None:
    signed = _sdk_sign(IDENTITY_URL, {"scopes": ["chat"]})
    signed.headers["x-ms-date"] = rfc1123(datetime.now(UTC) - timedelta(minutes=1))
    assert _denied(signed)["details"][0]["code"] == "InvalidSignature"


def test_a_changed_host_is_denied() -> None:
    signed = _sdk_sign(IDENTITY_URL, {"scopes": ["chat"]})
    signed.headers["Host"] = "127.0.0.1:9443"
    assert _denied(signed)["details"][0]["code"] == "InvalidSignature"


def test_the_wrong_key_is_denied() -> None:
    assert _denied(_sdk_sign(IDENTITY_URL), key=OTHER_KEY)["details"][0]["code"] == "InvalidSignature"


def test_clock_skew_up_to_15_minutes_is_accepted() -> None:
    signed = _sdk_sign(IDENTITY_URL)
    now = datetime.now(UTC)
    _check(signed, now=now + timedelta(minutes=14))
    _check(signed, now=now - timedelta(minutes=14))
    for skewed in (now + timedelta(minutes=16), now - timedelta(minutes=16)):
        assert _denied(signed, now=skewed)["details"][0]["code"] == "RequestExpired"


def test_a_custom_skew_window() -> None:
    signed = _sdk_sign(IDENTITY_URL)
    later = datetime.now(UTC) + timedelta(minutes=2)
    with pytest.raises(Unauthorized):
        verify_hmac(
            "POST", signed.target, signed.headers, signed.body, KEY, later, max_skew=timedelta(minutes=1)
        )


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h: h.pop("Authorization"), "MissingAuthorization"),
        (lambda h: h.update(Authorization="Bearer abc"), "MissingAuthorization"),
        (
            lambda h: h.update(Authorization="HMAC-SHA256 SignedHeaders=host&Signature=abc"),
            "InvalidAuthorization",
        ),
        (lambda h: h.update(Authorization=h["Authorization"].split("&")[0]), "InvalidAuthorization"),
        (lambda h: h.pop("x-ms-date"), "MissingHeader"),
        (lambda h: h.pop("x-ms-content-sha256"), "MissingHeader"),
        (lambda h: h.update({"x-ms-date": "yesterday"}), "InvalidDate"),
    ],
    ids=["no-auth", "bearer", "too-few-signed-headers", "no-signature", "no-date", "no-hash", "bad-date"],
)
def test_malformed_requests_are_denied(mutate, reason: str) -> None:
    signed = _sdk_sign(IDENTITY_URL)
    mutate(signed.headers)
    assert _denied(signed)["details"][0]["code"] == reason


def test_header_names_are_case_insensitive() -> None:
    signed = _sdk_sign(IDENTITY_URL, {"scopes": ["chat"]})
    signed.headers = {name.upper(): value for name, value in signed.headers.items()}
    _check(signed)


# --- Variants real SDK builds produce (wire-facts: HMAC step 4) -----------------------------------------------


def test_variant_a_unquoted_path() -> None:
    """aiohttp/yarl transports and `decode_url=True` sign the decoded path but send it encoded."""
    signed = _sdk_sign(IDENTITY_URL, {"scopes": ["chat"]}, decode_url=True)
    assert "%3A" in signed.target
    _check(signed)


def test_variant_b_host_with_trailing_slash() -> None:
    """`Client("http://h:p/", key)` signs with host `h:p/`."""
    signed = _sdk_sign(IDENTITY_URL, host="http://127.0.0.1:8443/")
    _check(signed)


def test_variant_c_path_without_leading_slash() -> None:
    """Old SDKs cut `len(host) + 8` characters, which over http:// also drops the leading `/`."""
    date, digest = rfc1123(datetime.now(UTC)), content_hash(b"")
    target = "/sms?api-version=2021-03-07"
    signature = compute_signature(string_to_sign("POST", target[1:], [date, "127.0.0.1:8443", digest]), KEY)
    headers = {
        "Host": "127.0.0.1:8443",
        "x-ms-date": date,
        "x-ms-content-sha256": digest,
        "Authorization": f"HMAC-SHA256 SignedHeaders={SIGNED}&Signature={signature}",
    }
    verify_hmac("POST", target, headers, b"", KEY, datetime.now(UTC))


def test_variant_date_header_instead_of_x_ms_date() -> None:
    """SDKs before azure-sdk-for-python#19396 signed the `Date` header."""
    date, digest = rfc1123(datetime.now(UTC)), content_hash(b"{}")
    signature = compute_signature(string_to_sign("POST", "/identities", [date, "h.example", digest]), KEY)
    headers = {
        "Host": "h.example",
        "Date": date,
        "x-ms-content-sha256": digest,
        "Authorization": f"HMAC-SHA256 SignedHeaders=date;host;x-ms-content-sha256&Signature={signature}",
    }
    verify_hmac("POST", "/identities", headers, b"{}", KEY, datetime.now(UTC))


@pytest.mark.parametrize(
    ("signed_host", "host_header"),
    [("h.example:443", "h.example"), ("h.example", "h.example:443"), ("h.example:80", "h.example")],
)
def test_variant_default_port_present_on_one_side_only(signed_host: str, host_header: str) -> None:
    """Clients drop a default port from `Host` but sign the endpoint's netloc as written."""
    headers = sign_request("GET", f"https://{signed_host}/identities?api-version=2023-10-01", b"", KEY)
    verify_hmac(
        "GET",
        "/identities?api-version=2023-10-01",
        headers | {"Host": host_header},
        b"",
        KEY,
        datetime.now(UTC),
    )


def test_a_non_default_port_must_match() -> None:
    headers = sign_request("GET", "https://h.example:8443/identities", b"", KEY)
    with pytest.raises(Unauthorized):
        verify_hmac("GET", "/identities", headers | {"Host": "h.example"}, b"", KEY, datetime.now(UTC))


# --- sign_request, commgrid's own signer ----------------------------------------------------------


def test_sign_request_matches_the_sdk_policy_byte_for_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    now = datetime(2026, 11, 22, 14, 31, 34, tzinfo=UTC)
    monkeypatch.setattr(identity_policy, "get_current_utc_time", lambda: "Sun, 22 Nov 2026 14:31:34 GMT")
    sdk = _sdk_sign(IDENTITY_URL, {"scopes": ["chat"]})
    ours = sign_request("POST", IDENTITY_URL, sdk.body, KEY, now)
    assert ours["x-ms-date"] == sdk.headers["x-ms-date"]
    assert ours["x-ms-content-sha256"] == sdk.headers["x-ms-content-sha256"]
    assert ours["Authorization"] == sdk.headers["Authorization"]


def test_sign_request_round_trips() -> None:
    body = b'{"from": "+18005550100"}'
    headers = sign_request("post", "https://acs.example/sms?api-version=2021-03-07", body, KEY)
    verify_hmac(
        "POST", "/sms?api-version=2021-03-07", headers | {"host": "acs.example"}, body, KEY, datetime.now(UTC)
    )


def test_content_hash_of_an_empty_body() -> None:
    assert content_hash(b"") == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
