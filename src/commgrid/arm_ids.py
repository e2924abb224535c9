"""Azure Resource Manager ids of the resources commgrid serves (no imports: `commgrid.testing` uses it too)."""

from __future__ import annotations

EVENTGRID_TOPICS = "Microsoft.EventGrid/topics"
EVENTGRID_SYSTEM_TOPICS = "Microsoft.EventGrid/systemTopics"
EVENTGRID_NAMESPACES = "Microsoft.EventGrid/namespaces"
COMMUNICATION_SERVICES = "Microsoft.Communication/communicationServices"


def resource_id(subscription_id: str, resource_group: str, resource_type: str, name: str) -> str:
    """`/subscriptions/{id}/resourceGroups/{group}/providers/{resource_type}/{name}`."""
    return f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/{resource_type}/{name}"
