"""Store errors are the store's own; the HTTP and CLI edges answer an untranslated one as before."""

from __future__ import annotations

import pytest

from commgrid.errors import CommgridError, from_store
from commgrid.store.errors import AlreadyExists, Missing, StoreError, StoreNotOpen, VersionConflict


@pytest.mark.parametrize("error", [StoreError, StoreNotOpen, AlreadyExists, Missing, VersionConflict])
def test_store_errors_are_not_http_errors(error: type[StoreError]) -> None:
    assert not issubclass(error, CommgridError)


@pytest.mark.parametrize(("error", "status", "code"), [
    (Missing, 404, "NotFound"), (AlreadyExists, 409, "Conflict"), (VersionConflict, 409, "Conflict"),
    (StoreNotOpen, 500, "InternalServerError"), (StoreError, 500, "InternalServerError"),
])
def test_an_untranslated_store_error_keeps_its_answer(error: type[StoreError], status: int, code: str) -> None:
    answer = from_store(error("Topic 'a' was not found."))
    assert (answer.status, answer.code, answer.message) == (status, code, "Topic 'a' was not found.")
