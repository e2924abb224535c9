"""Microsoft.Communication over ARM: the one Communication Services resource, its keys and connection strings.

So a script fetches its connection string as it does in Azure (azure-mgmt-communication's
`communication_services.get / list_keys / regenerate_key`).
https://learn.microsoft.com/rest/api/communication/resourcemanager/communication-services
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from commgrid import __version__
from commgrid.api.management.common import body, field, page, resource
from commgrid.api.management.router import ArmCall, ArmRouter
from commgrid.errors import InvalidInput, NotFound


def render_resource(call: ArmCall) -> dict[str, Any]:
    d, settings = call.runtime.deployment, call.runtime.settings
    return {
        "id": d.acs_arm_id, "name": d.resource_name, "type": "Microsoft.Communication/CommunicationServices",
        "location": "global", "tags": {},
        "properties": {"provisioningState": "Succeeded", "hostName": settings.https_base.split("://", 1)[1],
                       "dataLocation": "United States", "immutableResourceId": d.immutable_id,
                       "version": __version__, "publicNetworkAccess": "Enabled", "disableLocalAuth": False,
                       "linkedDomains": []},
    }


def _keys(call: ArmCall) -> dict[str, str]:
    d, base = call.runtime.deployment, call.runtime.settings.https_base
    return {"primaryKey": d.access_key, "secondaryKey": d.secondary_key,
            "primaryConnectionString": f"endpoint={base}/;accesskey={d.access_key}",
            "secondaryConnectionString": f"endpoint={base}/;accesskey={d.secondary_key}"}


def _check_name(call: ArmCall) -> None:
    d, name = call.runtime.deployment, call.params["resource"]
    if name.lower() != d.resource_name.lower():
        raise NotFound(f"The Resource 'Microsoft.Communication/communicationServices/{name}' under resource group"
                       f" '{d.resource_group}' was not found. commgrid serves one, '{d.resource_name}'.",
                       code="ResourceNotFound")


async def get_resource(call: ArmCall) -> Response:
    _check_name(call)
    return resource(render_resource(call))


async def list_resources(call: ArmCall) -> Response:
    return page(call, [render_resource(call)])


async def list_keys(call: ArmCall) -> Response:
    _check_name(call)
    return resource(_keys(call))


async def regenerate_key(call: ArmCall) -> Response:
    _check_name(call)
    kind = field(await body(call), "keyType")
    if not isinstance(kind, str) or kind.lower() not in ("primary", "secondary"):
        raise InvalidInput(f"keyType must be 'Primary' or 'Secondary'; got {kind!r}.", code="InvalidKeyType")
    await call.runtime.acs.regenerate_key(kind.lower())
    return resource(_keys(call))


def add_routes(router: ArmRouter) -> None:
    base = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Communication/communicationServices"
    router.add("GET", "/subscriptions/{sub}/providers/Microsoft.Communication/communicationServices", list_resources)
    router.add("GET", base, list_resources)
    router.add("GET", base + "/{resource}", get_resource)
    router.add("POST", base + "/{resource}/listKeys", list_keys)
    router.add("POST", base + "/{resource}/regenerateKey", regenerate_key)
