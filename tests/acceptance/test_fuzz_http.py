"""Property-based tests over HTTP: a real server given arbitrary bodies and headers on every API answers 2xx or
4xx in Azure's error format, never a 500, and never hangs (each request has a 10 s budget).

The bodies are shaped like the real ones (the right field names, values of any JSON type) so the fuzzing gets
past the first checks. `HYPOTHESIS_PROFILE=long` runs many more examples.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commgrid.acs.hmac_auth import sign_request
from tests.support import ServerProcess

EXAMPLES = 5000 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 60
fuzz = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

numbers = st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=False, allow_infinity=False))
text = st.text(max_size=12)
scalars = st.one_of(st.none(), st.booleans(), numbers, text)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)), max_leaves=12)


def shaped(*fields: str) -> st.SearchStrategy[Any]:
    """Objects with some of `fields` (any JSON values), or any JSON value at all."""
    return st.one_of(values, st.fixed_dictionaries({}, optional={f: values for f in fields}))


def encoded(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    def dump(value: Any) -> bytes:
        try:
            return orjson.dumps(value)
        except TypeError:  # an integer beyond 64 bits: written out by hand
            return str(value).encode() if isinstance(value, int) else b"{}"
    return st.one_of(strategy.map(dump), st.binary(max_size=64))


class Client:
    """A live server and the credentials to reach each API."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.http, timeout=10)
        info = server.info()
        self.key = info["communicationServices"]["accessKey"]
        self.management_token = info["management"]["token"]
        self.eg = server.create_topic("fuzz-eg")
        self.ce = server.create_topic("fuzz-ce", "cloudeventschemav1_0")
        created = self.signed("POST", "/identities?api-version=2023-10-01", b'{"createTokenWithScopes":["chat"]}')
        self.user = created.json()["identity"]["id"]
        self.bearer = {"Authorization": f"Bearer {created.json()['accessToken']['token']}"}
        thread = self.http.post("/chat/threads?api-version=2021-09-07", json={"topic": "fuzz"}, headers=self.bearer)
        self.thread = thread.json()["chatThread"]["id"]
        message = self.http.post(f"{self.thread_path}/messages?api-version=2021-09-07", json={"content": "hi"},
                                 headers=self.bearer)
        self.message = message.json()["id"]

    @property
    def thread_path(self) -> str:
        return f"/chat/threads/{quote(self.thread, safe='')}"

    def signed(self, method: str, path: str, body: bytes) -> httpx.Response:
        url = self.server.http + path
        return self.http.request(method, path, content=body, headers=sign_request(method, url, body, self.key))


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[Client]:
    server = ServerProcess(tmp_path_factory.mktemp("fuzz")).start()
    c = Client(server)
    yield c
    c.http.close()
    server.stop()


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400 and response.content:
        error = response.json()["error"]
        assert isinstance(error["code"], str) and error["code"] and isinstance(error["message"], str)


eg_event = shaped("id", "subject", "eventType", "eventTime", "data", "dataVersion", "metadataVersion", "topic")
ce_event = shaped("id", "source", "type", "specversion", "time", "subject", "data", "data_base64",
                  "datacontenttype")


@fuzz
@given(body=encoded(st.one_of(st.lists(eg_event, max_size=3), st.lists(ce_event, max_size=3), ce_event)),
       cloudevent=st.booleans())
def test_publish(client: Client, body: bytes, cloudevent: bool) -> None:
    topic = client.ce if cloudevent else client.eg
    content_type = "application/cloudevents+json" if cloudevent else "application/json"
    check(client.http.post(f"/topics/{topic['name']}/api/events", content=body,
                           headers={"aeg-sas-key": topic["key1"], "content-type": content_type}))


@fuzz
@given(headers=st.dictionaries(st.sampled_from(["aeg-sas-key", "aeg-sas-token", "authorization"]),
                               st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126),
                                       max_size=80).map(str.strip),
                               max_size=2),
       query=st.text(max_size=30))
def test_publish_credentials(client: Client, headers: dict[str, str], query: str) -> None:
    check(client.http.post(f"/topics/{client.eg['name']}/api/events?{quote(query, safe='=&')}", content=b"[]",
                           headers=headers))


@fuzz
@given(body=encoded(shaped("createTokenWithScopes", "expiresInMinutes", "scopes", "token", "appId", "userId")),
       path=st.sampled_from(["/identities", "/identities/{user}/:issueAccessToken",
                             "/identities/{user}/:revokeAccessTokens", "/teamsUser/:exchangeAccessToken"]))
def test_identity(client: Client, body: bytes, path: str) -> None:
    check(client.signed("POST", path.format(user=quote(client.user, safe="")) + "?api-version=2023-10-01", body))


@fuzz
@given(body=encoded(st.one_of(
    shaped("from", "to", "message", "smsSendOptions", "smsRecipients"),
    st.fixed_dictionaries({"from": values, "smsRecipients": st.lists(shaped("to", "repeatabilityRequestId"),
                                                                     max_size=2), "message": values}))),
       inbound=st.booleans())
def test_sms(client: Client, body: bytes, inbound: bool) -> None:
    path = "/commgrid/sms/inbound" if inbound else "/sms?api-version=2021-03-07"
    check(client.signed("POST", path, body))


@fuzz
@given(body=encoded(shaped("topic", "participants", "metadata", "content", "senderDisplayName", "type",
                           "chatMessageId", "communicationIdentifier", "retentionPolicy")),
       route=st.sampled_from([("POST", "/chat/threads"), ("PATCH", "{thread}"), ("POST", "{thread}/messages"),
                              ("PATCH", "{thread}/messages/{message}"), ("POST", "{thread}/participants/:add"),
                              ("POST", "{thread}/participants/:remove"), ("POST", "{thread}/readReceipts"),
                              ("POST", "{thread}/typing")]))
def test_chat(client: Client, body: bytes, route: tuple[str, str]) -> None:
    method, path = route
    path = path.format(thread=client.thread_path, message=quote(client.message, safe=""))
    check(client.http.request(method, f"{path}?api-version=2021-09-07", content=body,
                              headers={**client.bearer, "content-type": "application/merge-patch+json"
                                       if method == "PATCH" else "application/json"}))


@fuzz
@given(token=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=300),
       path=st.sampled_from(["/chat/threads", "{thread}/messages", "{thread}/participants"]))
def test_chat_tokens(client: Client, token: str, path: str) -> None:
    check(client.http.get(f"{path.format(thread=client.thread_path)}?api-version=2021-09-07",
                          headers={"Authorization": f"Bearer {token}"}))


ARM = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/commgrid/providers/Microsoft.EventGrid"
webhook = st.fixed_dictionaries({"endpointType": st.one_of(st.just("WebHook"), values)}, optional={
    "properties": shaped("endpointUrl", "maxEventsPerBatch", "preferredBatchSizeInKilobytes",
                         "deliveryAttributeMappings")})
arm_properties = st.fixed_dictionaries({}, optional={
    "destination": st.one_of(webhook, values), "filter": shaped(
        "includedEventTypes", "subjectBeginsWith", "isSubjectCaseSensitive", "advancedFilters"),
    "retryPolicy": shaped("maxDeliveryAttempts", "eventTimeToLiveInMinutes"), "eventDeliverySchema": values,
    "expirationTimeUtc": values, "labels": values, "deadLetterDestination": values, "inputSchema": values,
    "source": values, "topicType": values, "eventRetentionInDays": values, "filtersConfiguration": values,
    "deliveryConfiguration": shaped("deliveryMode", "queue", "push")})


@fuzz
@given(body=encoded(st.one_of(values, st.fixed_dictionaries({}, optional={
    "location": values, "tags": values, "sku": values, "keyName": values, "properties": st.one_of(arm_properties,
                                                                                                  values)}))),
       route=st.sampled_from([("PUT", "/topics/fuzz-arm"), ("PATCH", "/topics/fuzz-arm"),
                              ("POST", "/topics/fuzz-arm/regenerateKey"),
                              ("PUT", "/topics/fuzz-arm/eventSubscriptions/fuzz-sub"),
                              ("PATCH", "/topics/fuzz-arm/eventSubscriptions/fuzz-sub"),
                              ("PUT", "/systemTopics/commgrid"), ("PUT", "/namespaces/fuzz-ns"),
                              ("PATCH", "/namespaces/fuzz-ns"), ("PUT", "/namespaces/fuzz-ns/topics/t1"),
                              ("PUT", "/namespaces/fuzz-ns/topics/t1/eventSubscriptions/s1")]))
def test_management_bodies(client: Client, body: bytes, route: tuple[str, str]) -> None:
    method, path = route
    token = {"Authorization": f"Bearer {client.management_token}", "content-type": "application/json"}
    check(client.http.request(method, f"{ARM}{path}?api-version=2025-02-15", content=body, headers=token))
