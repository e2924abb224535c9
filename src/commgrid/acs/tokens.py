"""User access tokens: the JWTs the Identity API issues and the Chat API accepts as `Bearer` credentials.

Claims follow the real service (docs/wire-facts.md, User access tokens): `skypeid` (the user's raw id without `8:`),
`scp`, `csi` (issue time, a string), `iat`, `exp`, `acsScope` (comma-joined scopes), `resourceId` and, when
configured, `resourceLocation`. The real service signs RS256; no SDK verifies the signature, so commgrid signs
HS256 with a server secret.

The Python SDKs read `exp` with *standard* `base64.b64decode` (wire-facts: tokens), which rejects the base64url
characters `-` and `_`. In ASCII JSON those only arise from a few characters (`_BASE64URL_HAZARDS`), so
the payload writes those as `\\u00XX` escapes: the same JSON, whose encoding never contains `-` or `_`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import jwt

from commgrid.acs.identifiers import skype_id, user_from_skype_id
from commgrid.errors import Detail, Forbidden, InvalidInput, Unauthorized

ALGORITHM = "HS256"
DEFAULT_EXPIRES_IN = timedelta(hours=24)  # `expiresInMinutes` default 1440 (Identity spec)
MIN_EXPIRES_IN, MAX_EXPIRES_IN = timedelta(minutes=60), timedelta(minutes=1440)
# The only `scp` value real tokens carry (wire-facts: tokens); its bits are undocumented and no client reads them.
SCP = 1792

# Base64 digits 62 ('-') and 63 ('_') are the 6-bit values 11111x. From ASCII (high bits clear) the first
# three digits of a 3-byte group stay at or below 61; only the fourth, the last byte's low six bits, reaches
# them: `>` `?` `~` DEL. Escaping those four keeps any payload clean (compact JSON has them only in strings).
_BASE64URL_HAZARDS = str.maketrans({ch: f"\\u{ord(ch):04x}" for ch in ">?~\x7f"})


class Scope(StrEnum):
    """Token scopes (`CommunicationTokenScope` in the Identity SDK)."""

    CHAT = "chat"
    CHAT_JOIN = "chat.join"
    CHAT_JOIN_LIMITED = "chat.join.limited"
    VOIP = "voip"
    VOIP_JOIN = "voip.join"


class Permission(StrEnum):
    """What a scope can allow; the Chat and Calling APIs ask for one of these per operation."""

    CHAT = (
        "chat"  # send, edit, delete and read messages, read receipts, typing, list threads and participants
    )
    CREATE_THREAD = "chat.createThread"
    UPDATE_THREAD = "chat.updateThread"
    DELETE_THREAD = "chat.deleteThread"
    MANAGE_PARTICIPANTS = "chat.manageParticipants"
    START_CALL = "voip.startCall"
    JOIN_CALL = "voip.joinCall"


# From the scope enum's docstrings in `identity/_generated/models/_enums.py`: `chat.join` cannot
# create, delete or update threads; `chat.join.limited` also cannot add or remove participants; `voip.join`
# cannot start new calls.
GRANTS: dict[Scope, frozenset[Permission]] = {
    Scope.CHAT: frozenset(
        {
            Permission.CHAT,
            Permission.CREATE_THREAD,
            Permission.UPDATE_THREAD,
            Permission.DELETE_THREAD,
            Permission.MANAGE_PARTICIPANTS,
        }
    ),
    Scope.CHAT_JOIN: frozenset({Permission.CHAT, Permission.MANAGE_PARTICIPANTS}),
    Scope.CHAT_JOIN_LIMITED: frozenset({Permission.CHAT}),
    Scope.VOIP: frozenset({Permission.START_CALL, Permission.JOIN_CALL}),
    Scope.VOIP_JOIN: frozenset({Permission.JOIN_CALL}),
}

_SCOPE_NAMES = frozenset(scope.value for scope in Scope)
_NOT_AUTHORIZED = "Request is not authorized."  # the Chat spec's 401 example
_NOT_ALLOWED = "User is not allowed to perform specified action."  # the Chat spec's 403 example


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified token says about its bearer. Revocation is the caller's check: a token is revoked when
    its `generation` is older than the user's current one (revoking bumps it)."""

    user_id: str
    scopes: tuple[Scope, ...]
    issued_at: datetime
    expires_on: datetime
    resource_id: str
    generation: int = 0

    def allows(self, permission: Permission) -> bool:
        return allows(self.scopes, permission)


def parse_scopes(values: Iterable[str]) -> tuple[Scope, ...]:
    """Validate scope names as the Identity API does; unknown names are a 400 `ValidationError`."""
    names = list(values)
    unknown = [name for name in names if name not in _SCOPE_NAMES]
    if unknown:
        message = f"Scopes: The value(s) {', '.join(map(repr, unknown))} are not valid scopes."
        raise InvalidInput(message, code="ValidationError", details=[Detail("ValidationError", message)])
    return tuple(dict.fromkeys(Scope(name) for name in names))


def allows(scopes: Iterable[Scope], permission: Permission) -> bool:
    """True when any of `scopes` grants `permission`."""
    return any(permission in GRANTS[scope] for scope in scopes)


def require(claims: TokenClaims, permission: Permission) -> None:
    """Raise `Forbidden` (the Chat spec's 403) unless the token grants `permission`."""
    if not claims.allows(permission):
        raise Forbidden(
            _NOT_ALLOWED, details=[Detail("MissingScope", f"The token's scopes do not allow {permission}.")]
        )


class _SdkSafeJSONEncoder(json.JSONEncoder):
    """Compact ASCII JSON whose base64url form contains no `-` or `_` (see the module docstring)."""

    def encode(self, o: object) -> str:
        return super().encode(o).translate(_BASE64URL_HAZARDS)


class TokenIssuer:
    """Issues and verifies user access tokens for one ACS resource."""

    def __init__(self, secret: bytes, resource_id: str, resource_location: str | None = None) -> None:
        self._secret = secret
        self.resource_id = resource_id
        self.resource_location = resource_location

    def issue(
        self,
        user_id: str,
        scopes: Iterable[str],
        expires_in: timedelta = DEFAULT_EXPIRES_IN,
        *,
        now: datetime | None = None,
        generation: int = 0,
    ) -> tuple[str, datetime]:
        """Mint a token for `user_id` (a raw `8:acs:...` id) at the user's token `generation`."""
        issued_at = (now or datetime.now(UTC)).replace(microsecond=0)
        expires_on = issued_at + expires_in
        token = jwt.encode(
            self._claims(user_id, parse_scopes(scopes), issued_at, expires_on) | {"gen": generation},
            self._secret,
            algorithm=ALGORITHM,
            headers={"kid": "commgrid"},
            json_encoder=_SdkSafeJSONEncoder,
        )
        return token, expires_on

    def _claims(
        self, user_id: str, scopes: tuple[Scope, ...], issued_at: datetime, expires_on: datetime
    ) -> dict:
        iat = int(issued_at.timestamp())
        claims = {
            "skypeid": skype_id(user_id),
            "scp": SCP,
            "csi": str(iat),
            "exp": int(expires_on.timestamp()),
            "acsScope": ",".join(scopes),
            "resourceId": self.resource_id,
        }
        if self.resource_location:
            claims["resourceLocation"] = self.resource_location
        return claims | {"iat": iat}

    def verify(self, token: str, now: datetime) -> TokenClaims:
        """Check signature, shape and expiry; raise `Unauthorized` (the Chat spec's 401) otherwise."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"verify_exp": False, "verify_iat": False, "require": ["exp", "iat", "skypeid"]},
            )
        except jwt.InvalidSignatureError:
            raise _unauthorized("InvalidSignature", "The token was not issued by this resource.") from None
        except jwt.InvalidTokenError as exc:
            raise _unauthorized("InvalidToken", f"The token is malformed: {exc}.") from None
        parsed = self._to_claims(claims)
        if now >= parsed.expires_on:
            raise _unauthorized("TokenExpired", f"The token expired at {parsed.expires_on.isoformat()}.")
        return parsed

    def _to_claims(self, claims: dict) -> TokenClaims:
        try:
            scopes = parse_scopes(s for s in str(claims.get("acsScope", "")).split(",") if s)
            if claims.get("resourceId") != self.resource_id:
                raise ValueError("resourceId")
            return TokenClaims(
                user_id=user_from_skype_id(str(claims["skypeid"])),
                scopes=scopes,
                issued_at=datetime.fromtimestamp(int(claims["iat"]), UTC),
                expires_on=datetime.fromtimestamp(int(claims["exp"]), UTC),
                resource_id=self.resource_id,
                generation=int(claims.get("gen", 0)),
            )
        except (InvalidInput, ValueError, TypeError, OverflowError):
            raise _unauthorized("InvalidToken", "The token's claims are malformed.") from None


def _unauthorized(reason: str, explanation: str) -> Unauthorized:
    return Unauthorized(_NOT_AUTHORIZED, code="Unauthorized", details=[Detail(reason, explanation)])
