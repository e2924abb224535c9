"""Communication identities: the resource's users and their access tokens
(azure-rest-api-specs `specification/communication/data-plane/Identity/stable/2023-10-01`).

A user is a document in `IDENTITIES` keyed by its raw id, `8:acs:{immutable_id}_{guid}`. Its `tokenGeneration`
is stamped into every token issued for it: revoking bumps the generation, so older tokens stop working, and
deleting the user removes the document, so all of them do (`CommunicationResource.caller` checks both).
ACS emits no events for identity operations (wire-facts: recipients).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from commgrid.acs.identifiers import ACS_USER_PREFIX
from commgrid.acs.resource import IDENTITIES, CommunicationResource
from commgrid.acs.tokens import DEFAULT_EXPIRES_IN, MAX_EXPIRES_IN, MIN_EXPIRES_IN, parse_scopes
from commgrid.acs.validation import ValidationError, optional_int, string_list
from commgrid.errors import BadRequest, Conflict, InvalidInput, NotFound
from commgrid.store.base import Document, Missing, VersionConflict
from commgrid.timestamps import Precision, format_timestamp

# The message the service gives for an unknown identity (Azure/azure-sdk-for-js#19849, on revoke).
_NO_SUCH_IDENTITY = "Provided identity doesn't exist."
_MIN_MINUTES, _MAX_MINUTES = int(MIN_EXPIRES_IN.total_seconds() // 60), int(MAX_EXPIRES_IN.total_seconds() // 60)


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    expires_on: datetime

    def to_wire(self) -> dict[str, str]:
        """`CommunicationIdentityAccessToken`; `expiresOn` as the service writes it,
        `2023-10-10T21:39:39.3244584+00:00` (SDK 1.5.0 returns this string as is, Identity spec)."""
        return {"token": self.token, "expiresOn": format_timestamp(self.expires_on, Precision.TICKS, "+00:00")}


def new_user_id(immutable_id: str) -> str:
    """`8:acs:<resource id>_<guid>`; real ids' GUIDs start `00000008-` (Identity spec), and so do these."""
    guid = str(uuid.uuid4())
    return f"{ACS_USER_PREFIX}{immutable_id}_00000008{guid[8:]}"


def token_lifetime(expires_in_minutes: Any) -> timedelta:
    """`expiresInMinutes` within [60, 1440]; absent or null means the default, 1440 (Identity spec)."""
    minutes = optional_int(expires_in_minutes, "ExpiresInMinutes")
    if minutes is None:
        return DEFAULT_EXPIRES_IN
    if not _MIN_MINUTES <= minutes <= _MAX_MINUTES:
        raise ValidationError(
            f"ExpiresInMinutes value {minutes} is invalid. Value must be within the [{_MIN_MINUTES}, {_MAX_MINUTES}]"
            " interval.",
            target="ExpiresInMinutes",
        )
    return timedelta(minutes=minutes)


def _scopes(value: Any, field: str) -> list[str] | None:
    names = string_list(value, field)
    if names is None:
        return None
    try:
        parse_scopes(names)
    except InvalidInput as exc:
        raise ValidationError(exc.message, target="Scopes") from None
    return names


class IdentityService:
    """Create and delete users, issue and revoke their tokens."""

    def __init__(self, resource: CommunicationResource) -> None:
        self.resource = resource
        self.store = resource.store

    async def create_user(
        self, scopes: Any = None, expires_in_minutes: Any = None
    ) -> tuple[str, AccessToken | None]:
        """A new user; with scopes (`createTokenWithScopes`), also a token for it. Null or empty scopes: no
        token (Identity spec: null scopes create the identity only, 201)."""
        names = _scopes(scopes, "CreateTokenWithScopes")
        lifetime = token_lifetime(expires_in_minutes)
        user_id = new_user_id(self.resource.deployment.immutable_id)
        created = self.resource.now().isoformat()
        await self.store.put_document(
            Document(IDENTITIES, user_id, {"tokenGeneration": 0, "createdAt": created}), expect_version=0
        )
        token = self._issue(user_id, names, lifetime, 0) if names else None
        return user_id, token

    async def issue_token(self, user_id: str, scopes: Any, expires_in_minutes: Any) -> AccessToken:
        """A token for an existing user; `scopes` is required (Identity spec)."""
        names = _scopes(scopes, "Scopes")
        if not names:
            raise ValidationError("Scopes: The Scopes field is required.", target="Scopes")
        lifetime = token_lifetime(expires_in_minutes)
        identity = await self._identity(user_id)
        return self._issue(user_id, names, lifetime, int(identity.value.get("tokenGeneration", 0)))

    async def revoke_tokens(self, user_id: str) -> None:
        """Invalidate every token issued so far; tokens issued afterwards work."""
        for _ in range(20):  # optimistic concurrency: retry when another revoke raced this one
            identity = await self._identity(user_id)
            value = identity.value | {
                "tokenGeneration": int(identity.value.get("tokenGeneration", 0)) + 1,
                "revokedAt": self.resource.now().isoformat(),
            }
            try:
                await self.store.put_document(
                    Document(IDENTITIES, user_id, value), expect_version=identity.version
                )
                return
            except VersionConflict:
                continue
        raise Conflict("The identity is being changed concurrently; retry.")

    async def delete_user(self, user_id: str) -> None:
        """Remove the user; its tokens stop working at once."""
        try:
            await self.store.delete_document(IDENTITIES, user_id)
        except Missing:
            raise NotFound(_NO_SUCH_IDENTITY, code="IdentityNotFound") from None

    async def exchange_teams_token(self, token: Any, app_id: Any, user_id: Any) -> AccessToken:
        """`POST /teamsUser/:exchangeAccessToken`: commgrid has no Microsoft Entra ID to verify the token with."""
        for field, value in (("Token", token), ("AppId", app_id), ("UserId", user_id)):
            if not isinstance(value, str) or not value:
                raise ValidationError(f"{field}: The {field} field is required.", target=field)
        raise BadRequest(
            "commgrid does not emulate Microsoft Teams identities: exchanging a Teams user's Microsoft Entra ID"
            " token needs Microsoft Entra ID. Create Communication Services users instead.",
            code="TeamsInteropNotSupported",
        )

    # internals -----------------------------------------------------------------------------------------
    async def _identity(self, user_id: str) -> Document:
        try:
            return await self.store.get_document(IDENTITIES, user_id)
        except Missing:
            raise NotFound(_NO_SUCH_IDENTITY, code="IdentityNotFound") from None

    def _issue(self, user_id: str, scopes: list[str], lifetime: timedelta, generation: int) -> AccessToken:
        token, expires_on = self.resource.issuer.issue(
            user_id, scopes, lifetime, now=self.resource.now(), generation=generation
        )
        return AccessToken(token, expires_on)
