"""Phone numbers the Communication Services resource owns: the only valid SMS senders and inbound recipients.

Kept in the store (collection `PHONE_NUMBERS`, keyed by the number as written: E.164 `+15550100` or a 5-6 digit
short code `12345`), so every node and every restart sees the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from commgrid.acs.sms_text import is_e164, is_short_code
from commgrid.errors import BadRequest, Conflict, NotFound
from commgrid.store import Store
from commgrid.store.base import Document, Missing, VersionConflict

PHONE_NUMBERS = "acs.phoneNumbers"


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    number: str
    kind: str  # "phoneNumber" | "shortCode"
    added_at: str

    def to_json(self) -> dict[str, Any]:
        return {"phoneNumber": self.number, "kind": self.kind, "addedAt": self.added_at}


def number_kind(number: str) -> str:
    """`phoneNumber` (E.164) or `shortCode`; `BadRequest` for anything else."""
    if is_e164(number):
        return "phoneNumber"
    if is_short_code(number):
        return "shortCode"
    raise BadRequest(
        f"'{number}' is neither an E.164 number (+ then 2-15 digits) nor a 5-6 digit short code.",
        code="InvalidPhoneNumber",
    )


class PhoneNumbers:
    """The resource's numbers: add, list, remove, and the ownership check SMS relies on."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(self, number: str, added_at: str, *, exist_ok: bool = False) -> PhoneNumber:
        """Own `number`; `Conflict` if already owned, unless `exist_ok` (configured numbers, on every start)."""
        number = number.strip()
        owned = PhoneNumber(number, number_kind(number), added_at)
        try:
            await self.store.put_document(
                Document(PHONE_NUMBERS, number, {"kind": owned.kind, "addedAt": added_at}), expect_version=0
            )
        except VersionConflict:
            if exist_ok:
                return await self.get(number)
            raise Conflict(f"Phone number {number} is already owned by this resource.",
                           code="PhoneNumberAlreadyOwned") from None
        return owned

    async def get(self, number: str) -> PhoneNumber:
        try:
            doc = await self.store.get_document(PHONE_NUMBERS, number)
        except Missing:
            raise NotFound(f"Phone number {number} is not owned by this resource.",
                           code="PhoneNumberNotFound") from None
        return PhoneNumber(doc.key, doc.value.get("kind", "phoneNumber"), doc.value.get("addedAt", ""))

    async def owns(self, number: str) -> bool:
        try:
            await self.store.get_document(PHONE_NUMBERS, number)
        except Missing:
            return False
        return True

    async def list_all(self) -> list[PhoneNumber]:
        return [PhoneNumber(d.key, d.value.get("kind", "phoneNumber"), d.value.get("addedAt", ""))
                async for d in self.store.scan_documents(PHONE_NUMBERS, batch=500)]

    async def remove(self, number: str) -> None:
        try:
            await self.store.delete_document(PHONE_NUMBERS, number.strip())
        except Missing:
            raise NotFound(f"Phone number {number} is not owned by this resource.",
                           code="PhoneNumberNotFound") from None
