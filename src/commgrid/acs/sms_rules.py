"""Simulated carrier outcomes for outbound SMS: Delivered by default, or what the first matching rule says.

A rule matches recipients by number prefix (`+1555000`) or by a regular expression over the whole number, and
sets the delivery report's `deliveryStatus` (`Delivered` or `Failed`, the only values the service uses:
MicrosoftDocs/azure-docs#92663) and `deliveryStatusDetails`. Rules live in the store (collection `RULES`) and are
matched in the order they were added; the outcome is fixed when the SMS is accepted.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from commgrid.errors import BadRequest, NotFound
from commgrid.store import Store
from commgrid.store.base import Document, Missing

RULES = "acs.sms.rules"
DELIVERED, FAILED = "Delivered", "Failed"
# Details seen in real reports (docs/wire-facts.md): the seed's success text, and the timeout a carrier
# without delivery receipts produces.
DEFAULT_DETAILS = {DELIVERED: "No error.", FAILED: "ErrorCode: 5002. ErrorMessage: Message Delivery Timeout"}


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    """The delivery report a sent SMS gets, and the rule that chose it."""

    status: str
    details: str
    rule_id: str | None = None


DEFAULT_OUTCOME = ReportOutcome(DELIVERED, DEFAULT_DETAILS[DELIVERED])


@dataclass(frozen=True, slots=True)
class DeliveryRule:
    id: str
    status: str
    details: str
    created_at: str
    to_prefix: str | None = None
    to_pattern: str | None = None

    def matches(self, to: str) -> bool:
        if self.to_prefix is not None and not to.startswith(self.to_prefix):
            return False
        return self.to_pattern is None or re.fullmatch(self.to_pattern, to) is not None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "toPrefix": self.to_prefix, "toPattern": self.to_pattern, "status": self.status,
                "details": self.details, "createdAt": self.created_at}

    @classmethod
    def from_document(cls, doc: Document) -> DeliveryRule:
        v = doc.value
        return cls(doc.key, v["status"], v["details"], v["createdAt"], v.get("toPrefix"), v.get("toPattern"))


def normalize_status(status: str) -> str:
    for known in (DELIVERED, FAILED):
        if status.strip().lower() == known.lower():
            return known
    raise BadRequest(f"Delivery status '{status}' is invalid; use {DELIVERED} or {FAILED}.", code="InvalidStatus")


class DeliveryRules:
    """The rule list and the outcome it gives a recipient."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(
        self, status: str, created_at: str, *, to_prefix: str | None = None, to_pattern: str | None = None,
        details: str | None = None,
    ) -> DeliveryRule:
        """Append a rule; with neither `to_prefix` nor `to_pattern` it matches every recipient."""
        status = normalize_status(status)
        if to_pattern is not None:
            try:
                re.compile(to_pattern)
            except re.error as exc:
                raise BadRequest(f"Pattern '{to_pattern}' is not a valid regular expression: {exc}.",
                                 code="InvalidPattern") from None
        rule = DeliveryRule(f"r-{uuid.uuid4().hex[:8]}", status, details or DEFAULT_DETAILS[status], created_at,
                            to_prefix, to_pattern)
        value = {k: v for k, v in rule.to_json().items() if k != "id"}
        await self.store.put_document(Document(RULES, rule.id, value), expect_version=0)
        return rule

    async def list_all(self) -> list[DeliveryRule]:
        """Rules in matching order (oldest first)."""
        rules = [DeliveryRule.from_document(d) async for d in self.store.scan_documents(RULES, batch=500)]
        return sorted(rules, key=lambda r: (r.created_at, r.id))

    async def remove(self, rule_id: str) -> None:
        try:
            await self.store.delete_document(RULES, rule_id)
        except Missing:
            raise NotFound(f"SMS rule '{rule_id}' was not found.", code="RuleNotFound") from None

    async def clear(self) -> int:
        rules = await self.list_all()
        for rule in rules:
            await self.remove(rule.id)
        return len(rules)

    @staticmethod
    def outcome(rules: list[DeliveryRule], to: str) -> ReportOutcome:
        """The first matching rule's outcome, else Delivered."""
        for rule in rules:
            if rule.matches(to):
                return ReportOutcome(rule.status, rule.details, rule.id)
        return DEFAULT_OUTCOME
