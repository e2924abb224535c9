"""Errors raised by commgrid's domain code, each carrying its HTTP status and Azure error code.

The API layer renders every `CommgridError` as Azure's error body
(`{"error": {"code", "message", "details": [...]}}`); routes never build error JSON themselves.

    CommgridError
    ├── BadRequest (400)
    │   ├── InvalidInput         one or more validation problems, listed in `details`
    │   └── SchemaMismatch       events in the wrong schema for the topic
    ├── Unauthorized (401)
    ├── Forbidden (403)
    ├── NotFound (404)
    ├── Conflict (409)
    ├── PayloadTooLarge (413)
    └── ServiceUnavailable (503)

The store raises errors of its own (`commgrid.store.errors`); services translate the ones they expect, and
`from_store` gives any other its answer at the HTTP and CLI edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from commgrid.store.errors import StoreError


@dataclass(frozen=True, slots=True)
class Detail:
    """One item of an Azure error's `details` list."""

    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class CommgridError(Exception):
    """An internal error occurred."""

    status: int = 500
    code: str = "InternalServerError"

    def __init_subclass__(cls, *, status: int | None = None, code: str | None = None, **kwargs: object) -> None:
        """`class NotFound(CommgridError, status=404, code="NotFound")`: a subclass names its answer once."""
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status
        if code is not None:
            cls.code = code

    def __init__(
        self, message: str | None = None, *, code: str | None = None, details: list[Detail] | None = None
    ) -> None:
        self.message = message or (self.__doc__ or "").strip()
        if code:
            self.code = code
        self.details = details or []
        super().__init__(self.message)

    def to_body(self) -> dict:
        """Render as Azure's error body."""
        error: dict = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = [d.to_dict() for d in self.details]
        return {"error": error}


class BadRequest(CommgridError, status=400, code="BadRequest"):
    """The request is invalid."""


class InvalidInput(BadRequest):
    """The request is invalid; see details."""

    @classmethod
    def from_problems(cls, problems: list[Detail], summary: str | None = None) -> InvalidInput:
        message = summary or "; ".join(p.message for p in problems) or None
        return cls(message, details=problems)


class Problems:
    """Validation problems collected while reading a request, so one error lists them all (Azure's `details`)."""

    def __init__(self) -> None:
        self.details: list[Detail] = []

    def add(self, message: str, code: str = "InvalidRequest") -> None:
        self.details.append(Detail(code, message))

    def raise_if_any(self, what: str) -> None:
        """`InvalidInput` naming `what` ("event subscription", …) and every problem, if there is any."""
        if self.details:
            summary = f"Invalid {what}: " + " ".join(d.message for d in self.details)
            raise InvalidInput.from_problems(self.details, summary)


class SchemaMismatch(BadRequest):
    """The events do not match the topic's input schema."""


class Unauthorized(CommgridError, status=401, code="Unauthorized"):
    """The request did not contain valid credentials."""


class Forbidden(CommgridError, status=403, code="Forbidden"):
    """The caller is not allowed to perform this operation."""


class NotFound(CommgridError, status=404, code="NotFound"):
    """The requested resource was not found."""


class Conflict(CommgridError, status=409, code="Conflict"):
    """The resource already exists or was changed concurrently."""


class PayloadTooLarge(CommgridError, status=413, code="PayloadTooLarge"):
    """The request or an event in it is too large."""


class ServiceUnavailable(CommgridError, status=503, code="ServiceUnavailable"):
    """The service is shutting down or not ready."""


def from_store(exc: StoreError) -> CommgridError:
    """The answer to a store error no service translated: a missing record is a 404, an existing or changed one
    a 409, anything else (the database failed) a 500; each with the store's message."""
    # Imported here: the store package imports modules that import this one.
    from commgrid.store.errors import AlreadyExists, Missing, VersionConflict

    if isinstance(exc, Missing):
        return NotFound(exc.message)
    if isinstance(exc, AlreadyExists | VersionConflict):
        return Conflict(exc.message)
    return CommgridError(exc.message)
