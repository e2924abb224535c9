"""The Communication Services resource: its credentials, user tokens, event profile, and the one path its events
take into the grid (the system topic, through `Grid.publish`, like any published event; `emit_change` writes the
change's documents in the same transaction)."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from commgrid.acs.hmac_auth import verify_hmac, verify_signature
from commgrid.acs.tokens import TokenClaims, TokenIssuer
from commgrid.deployment import Deployment, new_key
from commgrid.errors import Unauthorized
from commgrid.events.acs import CATALOG, Emission
from commgrid.events.profiles import CURRENT, SEED, AcsEventProfile, profile_by_name
from commgrid.grid.service import Grid
from commgrid.store import Store
from commgrid.store.base import DocumentWrite, Missing

__all__ = ["CURRENT", "IDENTITIES", "SEED", "CommunicationResource"]

_NOT_AUTHORIZED = "Request is not authorized."
#: Store collection of identities: key = raw user id (`8:acs:…`), value = {"tokenGeneration": int, …}.
IDENTITIES = "acs.identities"


class CommunicationResource:
    """Shared state and helpers for the identity, SMS, chat and calling APIs."""

    def __init__(
        self, grid: Grid, deployment: Deployment, *, event_profile: str = "seed", time_scale: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.grid = grid
        grid.system_event_subjects.update({str(t): info.subject for t, info in CATALOG.items()})
        self.store: Store = grid.store
        self.deployment = deployment
        self.profile: AcsEventProfile = profile_by_name(event_profile)
        self.time_scale = time_scale
        self.clock = clock
        self.issuer = TokenIssuer(base64.b64decode(deployment.token_secret), deployment.immutable_id,
                                  deployment.location)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # authentication --------------------------------------------------------------------------------------
    def check_hmac(self, method: str, path_and_query: str, headers: Mapping[str, str], body: bytes) -> None:
        """Accept a request signed with either access key (identity, SMS); `Unauthorized` otherwise."""
        keys = (self.deployment.access_key, self.deployment.secondary_key)
        verify_hmac(method, path_and_query, headers, body, keys, self.now())

    def check_signature(self, method: str, path_and_query: str, headers: Mapping[str, str]) -> str:
        """Check an HMAC-signed request's headers before its body is read; returns the signed content hash."""
        keys = (self.deployment.access_key, self.deployment.secondary_key)
        return verify_signature(method, path_and_query, headers, keys, self.now())

    async def caller(self, authorization: str | None) -> TokenClaims:
        """The user behind a chat/calling request's `Authorization: Bearer <user token>`.

        The token must be valid, its user must exist, and it must not be revoked: each identity document
        (collection `IDENTITIES`, keyed by raw user id) holds `tokenGeneration`, which revoking bumps.
        """
        if not authorization or not authorization.lower().startswith("bearer "):
            raise Unauthorized(_NOT_AUTHORIZED, code="Unauthorized")
        claims = self.issuer.verify(authorization[7:].strip(), self.now())
        try:
            identity = await self.store.get_document(IDENTITIES, claims.user_id)
        except Missing:
            raise Unauthorized(_NOT_AUTHORIZED, code="Unauthorized") from None
        if identity.value.get("tokenGeneration", 0) != claims.generation:
            raise Unauthorized(_NOT_AUTHORIZED, code="Unauthorized")
        return claims

    async def regenerate_key(self, which: str) -> None:
        """A new primary or secondary access key, live on every node once the catalog reloads (at once here)."""
        setting = {"primary": "access_key", "secondary": "secondary_key"}[which]
        await self.store.set_setting(f"deployment.{setting}", new_key(), announce=True)
        self.grid.catalog.invalidate()
        await self.grid.catalog.refresh()

    # events ----------------------------------------------------------------------------------------------
    def emission(self) -> Emission:
        """Envelope inputs for the events of one API action."""
        return Emission(topic=self.deployment.acs_arm_id, event_time=self.now())

    async def emit(self, events: list[dict[str, Any]]) -> None:
        """Publish events into the system topic; returns once they are durable."""
        if events:
            await self.grid.publish(self.deployment.system_topic_name, events)

    async def emit_change(self, documents: list[DocumentWrite], events: list[dict[str, Any]]) -> None:
        """Write `documents` and publish `events` into the system topic in one transaction: all or nothing.

        `VersionConflict` if a document is not at its expected version; then nothing was written.
        """
        await self.grid.publish_change(self.deployment.system_topic_name, events, documents)
