"""The management API: the Azure Resource Manager paths azure-mgmt-eventgrid and azure-mgmt-communication call.

Every request needs `Authorization: Bearer <management token>` (`commgrid info` shows it; `serve
--management-token` sets it) and an `api-version`. commgrid is one Azure subscription with one resource group,
both named on first start (`--subscription-id`, `--resource-group`); other ids answer 404 as ARM does.
"""

from __future__ import annotations

import secrets
import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from commgrid.api.management import communication, entra, eventgrid, namespaces
from commgrid.api.management.router import ArmCall, ArmRouter
from commgrid.errors import BadRequest, NotFound
from commgrid.jsonresponse import json_response

ROUTER = ArmRouter()
eventgrid.add_routes(ROUTER)
communication.add_routes(ROUTER)
namespaces.add_routes(ROUTER)


def _unauthorized(code: str, message: str) -> Response:
    # No `claims` in the challenge: the SDK's bearer policy then returns the 401 as it is, without a retry loop.
    return json_response({"error": {"code": code, "message": message}}, 401,
                         headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def _authentication_problem(request: Request, token: str) -> Response | None:
    header = request.headers.get("authorization")
    if not header:
        return _unauthorized("AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return _unauthorized("AuthenticationFailed",
                             "Authentication failed. The 'Authorization' header is not a Bearer token.")
    given = given.strip()
    if not secrets.compare_digest(given.encode(), token.encode()) and not entra.verify(
            given, token, entra.MANAGEMENT_AUDIENCE, time.time()):
        return _unauthorized("InvalidAuthenticationToken",
                             "The access token is invalid: it is not this commgrid's management token"
                             " (`commgrid info` shows it).")
    return None


def _check_scope(call: ArmCall) -> None:
    d, p = call.runtime.deployment, call.params
    if "sub" in p and p["sub"].lower() != d.subscription_id.lower():
        raise NotFound(f"The subscription '{p['sub']}' could not be found. commgrid serves subscription"
                       f" '{d.subscription_id}' (--subscription-id on first start).", code="SubscriptionNotFound")
    if "rg" in p and p["rg"].lower() != d.resource_group.lower():
        raise NotFound(f"Resource group '{p['rg']}' could not be found. commgrid serves resource group"
                       f" '{d.resource_group}' (--resource-group on first start).", code="ResourceGroupNotFound")


async def dispatch(request: Request) -> Response:
    runtime = request.app.state.runtime
    problem = _authentication_problem(request, runtime.deployment.management_token)
    if problem is not None:
        return problem
    if not request.query_params.get("api-version"):
        raise BadRequest("The api-version query parameter (?api-version=) is required for all requests.",
                         code="MissingApiVersionParameter")
    handler, params = ROUTER.resolve(request.method, request.url.path)
    call = ArmCall(request, params, runtime)
    _check_scope(call)
    return await handler(call)


routes = [Route("/subscriptions/{path:path}", dispatch, methods=["GET", "PUT", "PATCH", "POST", "DELETE"]),
          *entra.routes]
