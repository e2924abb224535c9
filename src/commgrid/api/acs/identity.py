"""Communication Services identity REST API (learn.microsoft.com/rest/api/communication/identity): HMAC-signed,
any api-version."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from commgrid.acs.identity import IdentityService
from commgrid.acs.validation import parse_object
from commgrid.api.acs.auth import signed_body
from commgrid.api.acs.common import acs_empty, acs_json, begin, require_api_version


async def _signed(request: Request) -> bytes:
    begin(request)
    body = await signed_body(request)
    require_api_version(request)
    return body


def _service(request: Request) -> IdentityService:
    return request.app.state.runtime.identities


async def create(request: Request) -> Response:
    """`POST /identities` → 201 `{"identity": {"id"}, "accessToken"?: {"token", "expiresOn"}}`."""
    body = parse_object(await _signed(request), optional=True)
    user_id, token = await _service(request).create_user(body.get("createTokenWithScopes"),
                                                         body.get("expiresInMinutes"))
    result: dict = {"identity": {"id": user_id}}
    if token:
        result["accessToken"] = token.to_wire()
    return acs_json(request, result, 201)


async def delete(request: Request) -> Response:
    """`DELETE /identities/{id}` → 204."""
    await _signed(request)
    await _service(request).delete_user(request.path_params["user_id"])
    return acs_empty(request)


async def issue_token(request: Request) -> Response:
    """`POST /identities/{id}/:issueAccessToken` → 200 `{"token", "expiresOn"}`."""
    body = parse_object(await _signed(request), optional=True)
    token = await _service(request).issue_token(request.path_params["user_id"], body.get("scopes"),
                                                body.get("expiresInMinutes"))
    return acs_json(request, token.to_wire())


async def revoke_tokens(request: Request) -> Response:
    """`POST /identities/{id}/:revokeAccessTokens` → 204."""
    await _signed(request)
    await _service(request).revoke_tokens(request.path_params["user_id"])
    return acs_empty(request)


async def exchange_teams_token(request: Request) -> Response:
    """`POST /teamsUser/:exchangeAccessToken`: always a 400 naming the limitation (no Entra ID here)."""
    body = parse_object(await _signed(request))
    token = await _service(request).exchange_teams_token(body.get("token"), body.get("appId"), body.get("userId"))
    return acs_json(request, token.to_wire())


routes: list[BaseRoute] = [
    Route("/identities", create, methods=["POST"]),
    Route("/identities/{user_id}", delete, methods=["DELETE"]),
    Route("/identities/{user_id}/:issueAccessToken", issue_token, methods=["POST"]),
    Route("/identities/{user_id}/:revokeAccessTokens", revoke_tokens, methods=["POST"]),
    Route("/teamsUser/:exchangeAccessToken", exchange_teams_token, methods=["POST"]),
]
