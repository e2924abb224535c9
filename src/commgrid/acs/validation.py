"""Request validation for the Communication Services APIs, answered as the services answer it.

The real Identity service reports a bad field as 400
`{"error": {"code": "ValidationError", "message": "...", "target": "ExpiresInMinutes"}}` (the Identity spec);
the SMS checks here use the same shape. Messages follow ASP.NET's validation attributes, which the services use.
"""

from __future__ import annotations

from typing import Any

import orjson

from commgrid.errors import BadRequest, InvalidInput


class ValidationError(InvalidInput):
    """One request field is invalid; `target` names it as the service does (PascalCase)."""

    code = "ValidationError"

    def __init__(self, message: str, target: str | None = None) -> None:
        super().__init__(message)
        self.target = target

    def to_body(self) -> dict:
        body = super().to_body()
        if self.target:
            body["error"]["target"] = self.target
        return body


def required(field: str) -> ValidationError:
    """ASP.NET `[Required]`: `The From field is required.`"""
    return ValidationError(f"The {field} field is required.", target=field)


def parse_object(body: bytes, *, optional: bool = False) -> dict[str, Any]:
    """A JSON object request body. With `optional`, an empty body (or `null`) is `{}` (Identity create)."""
    if not body.strip():
        if optional:
            return {}
        raise BadRequest("A non-empty request body is required.", code="InvalidRequestBody")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}.", code="InvalidRequestBody") from None
    if value is None and optional:
        return {}
    if not isinstance(value, dict):
        raise BadRequest("The request body must be a JSON object.", code="InvalidRequestBody")
    return value


def optional_int(value: Any, field: str) -> int | None:
    """An int32 field that may be absent or null (older SDKs send explicit nulls, Identity spec)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"The field {field} must be an integer.", target=field)
    return value


def string_list(value: Any, field: str) -> list[str] | None:
    """An array of strings that may be absent or null."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError(f"The field {field} must be an array of strings.", target=field)
    return value
