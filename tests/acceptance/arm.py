"""Management clients as a user's script builds them: the official SDKs over HTTPS, with commgrid's CA."""

from __future__ import annotations

import time
from typing import Any

from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.mgmt.communication import CommunicationServiceManagementClient
from azure.mgmt.eventgrid import EventGridManagementClient

from tests.support import ServerProcess


class StaticToken:
    """An azure-core credential that hands out one fixed bearer token (commgrid's management token)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        return AccessTokenInfo(self.token, int(time.time()) + 3600)


def management(server: ServerProcess) -> dict[str, Any]:
    return server.info()["management"]


def eventgrid_client(server: ServerProcess, token: str | None = None) -> EventGridManagementClient:
    m = management(server)
    return EventGridManagementClient(StaticToken(token or m["token"]), m["subscriptionId"], base_url=server.https,
                                     connection_verify=server.ca)


def communication_client(server: ServerProcess) -> CommunicationServiceManagementClient:
    m = management(server)
    return CommunicationServiceManagementClient(StaticToken(m["token"]), m["subscriptionId"], base_url=server.https,
                                                connection_verify=server.ca)
