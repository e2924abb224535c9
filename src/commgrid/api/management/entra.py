"""A Microsoft Entra-shaped token endpoint, so `azure-identity` credentials work against commgrid's management API.

`ClientSecretCredential(tenant, client_id, secret, authority="https://127.0.0.1:7443",
disable_instance_discovery=True)` (or `DefaultAzureCredential(disable_instance_discovery=True)` with
`AZURE_AUTHORITY_HOST`, `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`) reads the OpenID
configuration below, then posts the client-credentials grant. Any tenant and client id are accepted; the client
secret is commgrid's management token. The access token is a JWT signed with that token (so rotating it ends
every issued token), for the audience the scope names; the management API accepts it for
`https://management.azure.com`.
https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow
"""

from __future__ import annotations

import secrets
import time
from urllib.parse import parse_qs

import jwt
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from commgrid.api.bodies import read_limited
from commgrid.jsonresponse import json_response

MANAGEMENT_AUDIENCE = "https://management.azure.com"
LIFETIME = 3600


def _oauth_error(status: int, error: str, description: str) -> Response:
    return json_response({"error": error, "error_description": description}, status)


def audience_of(scope: str) -> str:
    """`https://management.azure.com/.default` → `https://management.azure.com` (the first scope's resource)."""
    first = (scope.split() or [""])[0]
    return first.removesuffix(".default").rstrip("/")


def issue(secret: str, issuer: str, audience: str, client_id: str, tenant: str, now: float) -> str:
    claims = {"aud": audience, "iss": issuer, "iat": int(now), "nbf": int(now), "exp": int(now) + LIFETIME,
              "appid": client_id, "tid": tenant, "sub": client_id}
    return jwt.encode(claims, secret, algorithm="HS256")


def verify(token: str, secret: str, audience: str, now: float) -> bool:
    """Whether `token` is one this deployment issued for `audience` and it has not expired."""
    try:
        jwt.decode(token, secret, algorithms=["HS256"], audience=audience, options={"require": ["exp", "aud"]},
                   leeway=0)
    except jwt.PyJWTError:
        return False
    return True


async def openid_configuration(request: Request) -> Response:
    base = f"{request.url.scheme}://{request.url.netloc}/{request.path_params['tenant']}"
    return json_response({"issuer": f"{base}/v2.0", "token_endpoint": f"{base}/oauth2/v2.0/token",
                          "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                          "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                          "token_endpoint_auth_methods_supported": ["client_secret_post"],
                          "grant_types_supported": ["client_credentials"]})


async def token(request: Request) -> Response:
    form = {k: v[0] for k, v in parse_qs((await read_limited(request, 64 * 1024)).decode("utf-8", "replace")).items()}
    if form.get("grant_type") != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "commgrid issues tokens for the client credentials grant"
                                                            " only.")
    management_token = request.app.state.runtime.deployment.management_token
    given = form.get("client_secret", "")
    if not given or not secrets.compare_digest(given.encode(), management_token.encode()):
        return _oauth_error(401, "invalid_client", "Invalid client secret provided: use commgrid's management token"
                                                   " (`commgrid info`).")
    tenant = request.path_params["tenant"]
    issuer = f"{request.url.scheme}://{request.url.netloc}/{tenant}/v2.0"
    access = issue(management_token, issuer, audience_of(form.get("scope", "")), form.get("client_id", ""), tenant,
                   time.time())
    return json_response({"token_type": "Bearer", "expires_in": LIFETIME, "ext_expires_in": LIFETIME,
                          "access_token": access})


routes = [Route("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration, methods=["GET"]),
          Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"])]
