"""Identifiers of calls and parties: how they are minted, parsed from requests and written in responses.

Requests name a party by `{"rawId", "communicationUser": {"id"}}` or `{"rawId", "phoneNumber": {"value"}}`,
without `kind`; responses carry `kind`, `rawId` and the sub-object (the SDK picks the type by sub-object and
takes a user's id from `rawId`).
"""

from __future__ import annotations

import base64
import re
import secrets
import uuid
from typing import Any

import orjson

from commgrid.acs.identifiers import is_phone, is_user, phone_raw_id
from commgrid.errors import BadRequest

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


class InvalidCallRequest(BadRequest):
    """A Call Automation request the service rejects; the code is the service's numeric string."""

    code = "8523"


def new_call_connection_id() -> str:
    return str(uuid.uuid4())


def new_server_call_id() -> str:
    """Base64 (no padding) of a conversation URL, the form real `serverCallId`s have."""
    url = f"https://commgrid.local/conv/{secrets.token_urlsafe(16)}?i=0&e={secrets.randbelow(10**18)}"
    return base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def incoming_call_context(call_id: str) -> str:
    """An unsigned JWT (`alg: none`) whose payload names the call, as the service's contexts are shaped."""

    def part(value: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'cc': call_id, 'shrToken': secrets.token_hex(16)})}."


def call_of_context(context: Any) -> str:
    """The call an `incomingCallContext` names; 400 when it is not one commgrid issued."""
    if not isinstance(context, str) or context.count(".") != 2:
        raise InvalidCallRequest("The IncomingCallContext is invalid.")
    payload = context.split(".")[1]
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims["cc"])
    except (ValueError, KeyError, TypeError):
        raise InvalidCallRequest("The IncomingCallContext is invalid.") from None


def raw_id_of(model: Any, field: str = "target") -> str:
    """The raw id of a CommunicationIdentifierModel in a request."""
    if not isinstance(model, dict):
        raise InvalidCallRequest(f"The {field} is required.")
    if isinstance(model.get("phoneNumber"), dict) and isinstance(model["phoneNumber"].get("value"), str):
        number = model["phoneNumber"]["value"]
        if not _E164.match(number):
            raise InvalidCallRequest(f"The {field} phone number '{number}' is not in E.164 format.")
        return f"4:{number}"
    if isinstance(model.get("communicationUser"), dict) and isinstance(model["communicationUser"].get("id"), str):
        return model["communicationUser"]["id"]
    raw = model.get("rawId")
    if isinstance(raw, str) and raw:
        return raw
    raise InvalidCallRequest(f"The {field} is not a valid communication identifier.")


def normalize_party(value: str) -> str:
    """A CLI/simulation party (`+1425…`, `4:+1425…` or `8:acs:…`) as a raw id."""
    value = value.strip()
    if _E164.match(value):
        return phone_raw_id(value)
    if is_phone(value) or is_user(value):
        return value
    raise InvalidCallRequest(f"'{value}' is neither an E.164 phone number nor a raw communication identifier.")


