"""Beyond loopback, the dashboard and /metrics need the management credential; the login form sets a cookie."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests.support import ServerProcess


@pytest.fixture(scope="module")
def exposed(tmp_path_factory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("exposed"), extra_args=("--host", "0.0.0.0")).start()
    yield proc
    proc.stop()


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def test_metrics_and_the_dashboard_api_need_the_bearer_token(exposed: ServerProcess) -> None:
    token = exposed.info()["management"]["token"]
    for path in ("/metrics", "/dashboard/api/overview", "/dashboard/api/events"):
        status, body = _get(exposed.http + path)
        assert status == 401 and json.loads(body)["error"]["code"] == "AuthenticationFailed"
        assert _get(exposed.http + path, {"Authorization": "Bearer not-it"})[0] == 401
        assert _get(exposed.http + path, {"Authorization": f"Bearer {token}"})[0] == 200


def test_the_login_form_lets_a_browser_in_and_actions_still_need_the_csrf_token(browser: Browser,
                                                                               exposed: ServerProcess) -> None:
    token = exposed.info()["management"]["token"]
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{exposed.http}/dashboard")
    page.fill("input[name=token]", "wrong")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_contain_text("not this commgrid's management token")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    expect(page.locator("#live")).to_have_text("live")
    cookie = next(c for c in context.cookies() if c["name"] == "commgrid_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and token not in cookie["value"]
    forged = page.request.post(f"{exposed.http}/dashboard/api/deadletters/redeliver", data={"ids": []})
    assert forged.status == 403  # the cookie alone is not enough: no X-CSRF-Token
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    allowed = page.request.post(f"{exposed.http}/dashboard/api/deadletters/redeliver", data={"ids": []},
                                headers={"X-CSRF-Token": csrf})
    assert allowed.status == 200 and allowed.json() == {"redelivered": 0}
    context.close()
