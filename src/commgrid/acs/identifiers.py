"""Raw communication identifiers (`rawId`): the prefixes that tell their kinds apart, and their JSON models.

`4:+14255550123` is a phone number, `8:acs:{resource id}_{guid}` a Communication Services user. Every `8:` id
is a Communication Services user here: commgrid issues no Teams identities. A user access token's `skypeid`
claim is the raw id without its `8:`. See
https://learn.microsoft.com/azure/communication-services/concepts/identifiers
"""

from __future__ import annotations

from typing import Any

PHONE_PREFIX = "4:"
USER_PREFIX = "8:"  # the kind prefix every Communication Services (and Teams) user id starts with
ACS_USER_PREFIX = "8:acs:"  # the ids the identity API issues


def is_phone(raw_id: str) -> bool:
    return raw_id.startswith(PHONE_PREFIX)


def is_user(raw_id: str) -> bool:
    """A Communication Services user (as opposed to a phone number)."""
    return raw_id.startswith(USER_PREFIX)


def phone_raw_id(number: str) -> str:
    return PHONE_PREFIX + number


def skype_id(raw_id: str) -> str:
    """The `skypeid` claim of a user's token: the raw id without `8:`."""
    return raw_id.removeprefix(USER_PREFIX)


def user_from_skype_id(skypeid: str) -> str:
    return USER_PREFIX + skypeid


def communication_identifier(raw_id: str) -> dict[str, Any]:
    """The CommunicationIdentifierModel of a raw id: `rawId` plus the kind's object, as chat and event
    payloads write it."""
    if is_phone(raw_id):
        return {"rawId": raw_id, "phoneNumber": {"value": raw_id[len(PHONE_PREFIX):]}}
    if is_user(raw_id):
        return {"rawId": raw_id, "communicationUser": {"id": raw_id}}
    return {"rawId": raw_id}


def identifier_model(raw_id: str) -> dict[str, Any]:
    """The identifier with `kind` first, as Call Automation responses, callback events and IncomingCall's
    `to` and `from` write it."""
    model = communication_identifier(raw_id)
    kinds = [k for k in ("phoneNumber", "communicationUser") if k in model]
    return {"kind": kinds[0] if kinds else "unknown"} | model
