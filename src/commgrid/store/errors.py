"""The store's own errors. They say what happened to a record, not how to answer a request: the services
translate the ones they expect into `commgrid.errors` (with their own message and Azure code), and the HTTP
and CLI edges translate any other with `commgrid.errors.from_store`.

    StoreError            the store failed (a driver error never leaves a backend otherwise)
    ├── StoreNotOpen      used before `open()` or after `close()`
    ├── AlreadyExists     the record already exists
    ├── Missing           the record does not exist
    └── VersionConflict   a document was not at the version the write expected
"""

from __future__ import annotations


class StoreError(Exception):
    """The store failed."""

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (self.__doc__ or "").strip()
        super().__init__(self.message)


class StoreNotOpen(StoreError):
    """The store was used before `open()` or after `close()`."""


class AlreadyExists(StoreError):
    """The record already exists."""


class Missing(StoreError):
    """The record does not exist."""


class VersionConflict(StoreError):
    """A document changed since it was read (or exists where the write expected none)."""
