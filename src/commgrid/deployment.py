"""The identity of one commgrid deployment: its Communication Services resource, ARM ids and keys.

Created on first start and kept in the store, so every node and every restart sees the same values.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass, fields

from commgrid.arm_ids import COMMUNICATION_SERVICES, EVENTGRID_SYSTEM_TOPICS, EVENTGRID_TOPICS, resource_id
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
    #: The bearer token the management (ARM) API accepts.
    management_token: str = ""

    @property
    def acs_arm_id(self) -> str:
        return resource_id(self.subscription_id, self.resource_group, COMMUNICATION_SERVICES, self.resource_name)

    @property
    def system_topic_name(self) -> str:
        return self.resource_name

    @property
    def system_topic_arm_id(self) -> str:
        return resource_id(self.subscription_id, self.resource_group, EVENTGRID_SYSTEM_TOPICS, self.system_topic_name)

    def topic_arm_id(self, name: str) -> str:
        return resource_id(self.subscription_id, self.resource_group, EVENTGRID_TOPICS, name)

    def connection_string(self, https_base: str) -> str:
        return f"endpoint={https_base}/;accesskey={self.access_key}"


def new_management_token() -> str:
    return "cgm_" + secrets.token_urlsafe(32)


async def load_deployment(store: Store, settings: Settings) -> Deployment:
    """The deployment recorded in the store; the first start records it from `settings`.

    A management token or access key given in `settings` replaces the recorded one (every node picks it up).
    """
    first = {"subscription_id": settings.subscription_id, "resource_group": settings.resource_group,
             "resource_name": settings.resource_name, "location": settings.location, "access_key": new_key(),
             "secondary_key": new_key(), "token_secret": new_key(), "immutable_id": str(uuid.uuid4()),
             "management_token": new_management_token()}
    for key, value in first.items():
        await store.set_setting(f"deployment.{key}", value, only_if_absent=True)
    pinned = {"management_token": settings.management_token, "access_key": settings.access_key}
    for key, wanted in pinned.items():
        if wanted and await store.get_setting(f"deployment.{key}") != wanted:
            await store.set_setting(f"deployment.{key}", wanted, announce=True)
    return await read_deployment(store)


async def read_deployment(store: Store) -> Deployment:
    """The deployment as recorded now (after a key was regenerated, for instance)."""
    names = [f.name for f in fields(Deployment)]
    values = {name: await store.get_setting(f"deployment.{name}") or "" for name in names}
    return Deployment(**values)
