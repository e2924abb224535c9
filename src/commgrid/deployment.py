"""The identity of one commgrid deployment: its Communication Services resource, ARM ids and keys.

Created on first start and kept in the store, so every node and every restart sees the same values.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass

from commgrid.config import Settings
from commgrid.store import Store


def new_key() -> str:
    """A 256-bit key, base64 encoded as Azure's access keys are."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True)
class Deployment:
    subscription_id: str
    resource_group: str
    resource_name: str
    location: str
    access_key: str
    secondary_key: str
    token_secret: str
    #: The resource's immutable id: part of every user id (`8:acs:{immutable_id}_{guid}`) and token.
    immutable_id: str

    @property
    def acs_arm_id(self) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.Communication/communicationServices/{self.resource_name}")

    @property
    def system_topic_name(self) -> str:
        return self.resource_name

    @property
    def system_topic_arm_id(self) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.EventGrid/systemTopics/{self.system_topic_name}")

    def topic_arm_id(self, name: str) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.EventGrid/topics/{name}")

    def connection_string(self, https_base: str) -> str:
        return f"endpoint={https_base}/;accesskey={self.access_key}"


async def load_deployment(store: Store, settings: Settings) -> Deployment:
    """The deployment recorded in the store; the first start records it from `settings`."""

    async def keep(key: str, value: str) -> str:
        return await store.set_setting(f"deployment.{key}", value, only_if_absent=True)

    return Deployment(
        subscription_id=await keep("subscription_id", settings.subscription_id),
        resource_group=await keep("resource_group", settings.resource_group),
        resource_name=await keep("resource_name", settings.resource_name),
        location=await keep("location", settings.location),
        access_key=await keep("access_key", new_key()),
        secondary_key=await keep("secondary_key", new_key()),
        token_secret=await keep("token_secret", new_key()),
        immutable_id=await keep("immutable_id", str(uuid.uuid4())),
    )
