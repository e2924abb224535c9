"""Schemathesis over commgrid's HTTP APIs (`docs/openapi/commgrid.json`): generated requests, valid and
invalid, with real credentials (topic keys, HMAC signatures, user tokens), must never get a server error.

CI runs a few examples per operation; `SCHEMATHESIS_EXAMPLES=500` runs a longer search.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from commgrid.acs.hmac_auth import sign_request
from tests.support import ServerProcess

SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi" / "commgrid.json"
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "15"))
schema = schemathesis.openapi.from_dict(orjson.loads(SPEC.read_bytes()))
HMAC_PATHS = ("/identities", "/teamsUser", "/sms", "/commgrid/sms/inbound")


class Live:
    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.http, timeout=10)
        self.key = server.info()["communicationServices"]["accessKey"]
        self.topic = server.create_topic("schema")
        url = f"{server.http}/identities?api-version=2023-10-01"
        body = b'{"createTokenWithScopes":["chat"]}'
        created = self.http.post(url, content=body, headers=sign_request("POST", url, body, self.key)).json()
        self.bearer = f"Bearer {created['accessToken']['token']}"
        self.management = f"Bearer {server.info()['management']['token']}"

    def send(self, case: schemathesis.Case) -> httpx.Response:
        path = case.formatted_path
        if path.startswith("/topics/"):
            path = "/topics/schema/api/events"  # the one topic that exists; generated bodies go to it
        headers = {k: str(v) for k, v in (case.headers or {}).items()}
        body = self._body(case, headers)
        request = self.http.build_request(case.method, path, params=case.query or None, content=body,
                                          headers=headers)
        if path.startswith("/topics/"):
            request.headers["aeg-sas-key"] = self.topic["key1"]
        elif path.startswith(HMAC_PATHS):
            request.headers.update(sign_request(case.method, str(request.url), body or b"", self.key))
        elif path.startswith("/chat/"):
            request.headers["Authorization"] = self.bearer
        elif path.startswith("/subscriptions/"):
            request.headers["Authorization"] = self.management
        return self.http.send(request)

    @staticmethod
    def _body(case: schemathesis.Case, headers: dict[str, str]) -> bytes | None:
        if case.body is None or type(case.body).__name__ == "NotSet":
            return None
        headers.setdefault("content-type", case.media_type or "application/json")
        if isinstance(case.body, bytes | str):
            return case.body.encode() if isinstance(case.body, str) else case.body
        try:
            return orjson.dumps(case.body)
        except TypeError:  # an integer beyond 64 bits
            import json
            return json.dumps(case.body).encode()


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[Live]:
    server = ServerProcess(tmp_path_factory.mktemp("schemathesis")).start()
    client = Live(server)
    yield client
    client.http.close()
    server.stop()


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_no_server_errors(case: schemathesis.Case, live: Live) -> None:
    response = live.send(case)
    case.validate_response(response, checks=[not_a_server_error])
    if response.status_code >= 400 and response.content:
        assert response.headers.get("content-type", "").startswith("application/json"), (
            case.method, case.formatted_path, response.status_code, response.text[:200])
        body: Any = response.json()
        assert body["error"]["code"] and isinstance(body["error"]["message"], str), body
