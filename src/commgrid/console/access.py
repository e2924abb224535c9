"""Who may use the dashboard and `/metrics`, and how its actions resist cross-site requests.

- Bound to a loopback address (the default), `serve` is reachable from this machine only: no credential.
- Bound to any other address, every request needs the management credential: `Authorization: Bearer <token>`
  (scrapers, scripts), or the session cookie the dashboard's login form sets after checking the token.
- The dashboard's actions (POST) need the `X-CSRF-Token` header the page carries, and an `Origin`, when
  sent, naming this server: a page on another site can neither read the token nor send the header.

Cookie and CSRF values are HMACs of the management token, so rotating the token ends every session.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets

from starlette.requests import Request

COOKIE = "commgrid_console"
CSRF_HEADER = "x-csrf-token"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _derive(token: str, purpose: str) -> str:
    return hmac.new(token.encode(), f"commgrid-console:{purpose}".encode(), hashlib.sha256).hexdigest()


def session_value(token: str) -> str:
    return _derive(token, "session")


def csrf_token(token: str) -> str:
    return _derive(token, "csrf")


def _same(given: str | None, expected: str) -> bool:
    return given is not None and secrets.compare_digest(given.encode(), expected.encode())


def credential_needed(request: Request) -> bool:
    """Whether this server answers the console only to holders of the management credential."""
    client = request.client.host if request.client else ""
    return not (is_loopback(request.app.state.runtime.settings.host) and is_loopback(client))


def authorized(request: Request) -> bool:
    """A loopback-only server, a valid bearer token, or the login cookie."""
    if not credential_needed(request):
        return True
    token = request.app.state.runtime.deployment.management_token
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and _same(given.strip(), token):
        return True
    return _same(request.cookies.get(COOKIE), session_value(token))


def token_matches(request: Request, given: str) -> bool:
    return _same(given.strip(), request.app.state.runtime.deployment.management_token)


def same_origin(request: Request) -> bool:
    """A dashboard action came from the dashboard: it carries the page's CSRF token, from this origin."""
    origin = request.headers.get("origin")
    if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host", ""):
        return False
    return _same(request.headers.get(CSRF_HEADER), csrf_token(request.app.state.runtime.deployment.management_token))
