"""SMS: sending (`POST /sms`), inbound messages, repeatable requests and delivery reports.

Wire behaviour follows azure-rest-api-specs `specification/communication/data-plane/Sms/stable/2021-03-07` and its
example `send.json`:

- Request problems (missing fields, 0 or more than 100 recipients, a message over 2048 characters) are a 400;
  a `from` the resource does not own is a 401 with an empty message (docs/wire-facts.md). Everything else is
  answered per recipient inside a 202: a malformed `to` is `httpStatusCode 400` "Invalid To phone number format.".
- Repeatability is per recipient (`repeatabilityRequestId` + `repeatabilityFirstSent`, OASIS Repeatable Requests
  as ACS applies it: learn.microsoft.com/rest/api/communication/repeatable-requests). A repeat of a known id
  with the same sender, recipient and text gets the first answer again (same `messageId`, no second message or
  report); a different request under a known id, an id without a valid RFC 1123 first-sent date, or a first-sent
  date outside the 5-minute tracking window are `rejected`. `repeatabilityResult` appears only on recipients
  that carried an id, as in the spec example.
- With `enableDeliveryReport`, each accepted recipient gets one `SMSDeliveryReportReceived` after a simulated
  carrier delay (`CARRIER_DELAY` seconds divided by the time scale), echoing `tag`, with the outcome the
  delivery rules give (`sms_rules.py`). Reports wait in the store (collection `PENDING_REPORTS`, keyed by due
  time), written with the sent message (and its repeatability record) in one transaction before the 202 is
  sent, so a crash cannot lose them; `SmsWorker` emits each when due, in the transaction that removes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from commgrid.acs.phone_numbers import PhoneNumbers
from commgrid.acs.resource import CommunicationResource
from commgrid.acs.sms_rules import DeliveryRule, DeliveryRules
from commgrid.acs.sms_text import MAX_MESSAGE_LENGTH, analyze, is_valid_sender, recipient_error, utf16_length
from commgrid.acs.validation import ValidationError, required
from commgrid.errors import BadRequest, Detail, Unauthorized
from commgrid.events.acs import DeliveryAttempt, InboundSms, SmsDeliveryReport, new_sms_message_id
from commgrid.store.base import Document, DocumentWrite, Missing, VersionConflict

log = logging.getLogger("commgrid.sms")

REPEATABILITY = "acs.sms.repeatability"
PENDING_REPORTS = "acs.sms.pendingReports"
SENT = "acs.sms.sent"  # outbound messages with their delivery report, for the operator console
MAX_RECIPIENTS = 100
#: Seconds between acceptance and the delivery report, before the time scale divides it (real reports take
#: seconds: seed 002 shows 7 s between the message id's time and `ReceivedTimestamp`).
CARRIER_DELAY = 5.0
#: How long repeatability ids are tracked (the ACS repeatable-requests page: "currently ... 5 minutes").
REPEATABILITY_WINDOW = timedelta(minutes=5)
#: A node that took a due report and crashed before it was recorded gives it up after this many seconds.
REPORT_LEASE = 30.0

_RFC1123 = re.compile(r"^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# The service's per-recipient repeatability errors; the first is the spec example's text.
_BAD_FIRST_SENT = ("Request sent with Invalid DateTime value for repeatability-first-sent. Expected is DateTime"
                   " ,RFC1123 pattern.")
_BAD_REQUEST_ID = ("Request sent with Invalid value for repeatability-request-id. Expected is a 36-character"
                   " GUID.")
_OUTSIDE_WINDOW = "Repeatability first sent header not within 5 minute window."
_MISMATCH = "Request with this repeatability-request-id was already processed with a different payload."


class UnownedSender(Unauthorized):
    """The real service's answer to a `from` the resource does not own: 401 with an empty message (wire-facts)."""

    def __init__(self, number: str) -> None:
        hint = f"{number} is not a phone number of this resource; add it with `commgrid phone-number add {number}`."
        super().__init__(code="Unauthorized", details=[Detail("UnownedSender", hint)])
        self.message = ""


# --- request ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SmsRecipient:
    to: str
    repeatability_id: str | None = None
    first_sent: str | None = None


@dataclass(frozen=True, slots=True)
class SendRequest:
    """A validated `SendMessageRequest`."""

    from_: str
    recipients: tuple[SmsRecipient, ...]
    message: str
    enable_delivery_report: bool = False
    tag: str | None = None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> SendRequest:
        """Check the request-level rules of the schema; per-recipient formats are checked later."""
        from_ = _string(body.get("from"), "From")
        message = _string(body.get("message"), "Message", allow_empty=True)
        if utf16_length(message) > MAX_MESSAGE_LENGTH:
            raise ValidationError(
                f"The field Message must be a string with a maximum length of {MAX_MESSAGE_LENGTH}.", target="Message"
            )
        raw_recipients = body.get("smsRecipients")
        if raw_recipients is None:
            raise required("SmsRecipients")
        if not isinstance(raw_recipients, list):
            raise ValidationError("The field SmsRecipients must be an array.", target="SmsRecipients")
        if not raw_recipients:
            raise _length_error("minimum", 1)
        if len(raw_recipients) > MAX_RECIPIENTS:
            raise _length_error("maximum", MAX_RECIPIENTS)
        recipients = tuple(_recipient(r) for r in raw_recipients)
        options = body.get("smsSendOptions")
        if options is None:
            return cls(from_, recipients, message)
        if not isinstance(options, dict):
            raise ValidationError("The field SmsSendOptions must be an object.", target="SmsSendOptions")
        enable = options.get("enableDeliveryReport")
        if not isinstance(enable, bool):
            raise required("EnableDeliveryReport")
        tag = options.get("tag")
        if tag is not None and not isinstance(tag, str):
            raise ValidationError("The field Tag must be a string.", target="Tag")
        return cls(from_, recipients, message, enable, tag)

    def fingerprint(self, to: str) -> str:
        """What a repeated recipient must match to be the same request."""
        return hashlib.sha256(f"{self.from_}\n{to}\n{self.message}".encode()).hexdigest()


def _length_error(word: str, bound: int) -> ValidationError:
    """ASP.NET `[MinLength]` / `[MaxLength]` wording."""
    return ValidationError(
        f"The field SmsRecipients must be a string or array type with a {word} length of '{bound}'.",
        target="SmsRecipients",
    )


def _string(value: Any, field: str, *, allow_empty: bool = False) -> str:
    if value is None or (value == "" and not allow_empty):
        raise required(field)
    if not isinstance(value, str):
        raise ValidationError(f"The field {field} must be a string.", target=field)
    return value


def _recipient(item: Any) -> SmsRecipient:
    if not isinstance(item, dict):
        raise ValidationError("Each item of SmsRecipients must be an object.", target="SmsRecipients")
    to = _string(item.get("to"), "To")
    rid, first = item.get("repeatabilityRequestId"), item.get("repeatabilityFirstSent")
    if rid is not None and not isinstance(rid, str):
        raise ValidationError("The field RepeatabilityRequestId must be a string.", target="RepeatabilityRequestId")
    if first is not None and not isinstance(first, str):
        raise ValidationError("The field RepeatabilityFirstSent must be a string.", target="RepeatabilityFirstSent")
    return SmsRecipient(to, rid, first)


def _first_sent(value: str | None) -> datetime | None:
    if value is None or not _RFC1123.match(value.strip()):
        return None
    try:
        return parsedate_to_datetime(value).astimezone(UTC)
    except (TypeError, ValueError):
        return None


def _failed(to: str, status: int, error: str, repeatability: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"to": to, "httpStatusCode": status}
    if repeatability:
        item["repeatabilityResult"] = repeatability
    return item | {"errorMessage": error, "successful": False}


# --- service ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Batch:
    """What every recipient of one send shares."""

    request: SendRequest
    rules: list[DeliveryRule]
    segments: int
    now: datetime


class SmsService:
    """Outbound and inbound SMS of one Communication Services resource."""

    def __init__(self, resource: CommunicationResource, *, carrier_delay: float = CARRIER_DELAY) -> None:
        self.resource = resource
        self.store = resource.store
        self.numbers = PhoneNumbers(resource.store)
        self.rules = DeliveryRules(resource.store)
        self.carrier_delay = carrier_delay
        #: Called when a report is scheduled, so this node's worker wakes at its due time.
        self.on_scheduled: Callable[[float], None] = lambda due: None

    # sending -------------------------------------------------------------------------------------------
    async def send(self, request: SendRequest) -> list[dict[str, Any]]:
        """Send to every recipient; the `value` items of the 202 body, in request order."""
        if not await self.numbers.owns(request.from_):
            raise UnownedSender(request.from_)
        batch = _Batch(request, await self.rules.list_all(), analyze(request.message).segments, self.resource.now())
        return [await self._send_one(batch, r) for r in request.recipients]

    async def _send_one(self, batch: _Batch, recipient: SmsRecipient) -> dict[str, Any]:
        to = recipient.to
        if error := recipient_error(to):
            return _failed(to, 400, error)
        if recipient.repeatability_id is None:
            item, writes, due = self._accept(batch, to)
            await self._store_accepted(writes, due)
            return item
        rid = recipient.repeatability_id.lower()
        if not _GUID.match(rid):
            return _failed(to, 400, _BAD_REQUEST_ID, "rejected")
        first_sent = _first_sent(recipient.first_sent)
        if first_sent is None:
            return _failed(to, 400, _BAD_FIRST_SENT, "rejected")
        if abs(batch.now - first_sent) > REPEATABILITY_WINDOW:
            return _failed(to, 412, _OUTSIDE_WINDOW, "rejected")
        with contextlib.suppress(Missing):
            return self._replay(await self.store.get_document(REPEATABILITY, rid), batch.request, to)
        accepted, writes, due = self._accept(batch, to)
        item = {k: v for k, v in accepted.items() if k != "successful"} | {"repeatabilityResult": "accepted"}
        item["successful"] = True
        record = {"fingerprint": batch.request.fingerprint(to), "item": item, "firstSent": first_sent.timestamp()}
        try:
            await self._store_accepted([*writes, DocumentWrite(REPEATABILITY, rid, record, expect_version=0)], due)
        except VersionConflict:  # a concurrent copy of this request won, and nothing of ours was written
            return self._replay(await self.store.get_document(REPEATABILITY, rid), batch.request, to)
        return item

    def _replay(self, record: Document, request: SendRequest, to: str) -> dict[str, Any]:
        if record.value["fingerprint"] != request.fingerprint(to):
            return _failed(to, 400, _MISMATCH, "rejected")
        return dict(record.value["item"])

    def _accept(self, batch: _Batch, to: str) -> tuple[dict[str, Any], list[DocumentWrite], float | None]:
        """A new outbound message: its result item, the documents that record it (the sent message, and its
        pending delivery report if one was asked for), and when that report is due."""
        message_id = new_sms_message_id("Outgoing", batch.now)
        writes = [DocumentWrite(SENT, sent_key(batch.now.timestamp(), message_id), {
            "messageId": message_id, "from": batch.request.from_, "to": to, "message": batch.request.message,
            "tag": batch.request.tag, "sentAt": batch.now.isoformat(),
            "deliveryReport": batch.request.enable_delivery_report})]
        due = None
        if batch.request.enable_delivery_report:
            due, report = self._report(batch, message_id, to)
            writes.append(report)
        return {"to": to, "messageId": message_id, "httpStatusCode": 202, "successful": True}, writes, due

    def _report(self, batch: _Batch, message_id: str, to: str) -> tuple[float, DocumentWrite]:
        accepted = batch.now.timestamp()
        due = accepted + self.carrier_delay / self.resource.time_scale
        outcome = DeliveryRules.outcome(batch.rules, to)
        value = {"messageId": message_id, "from": batch.request.from_, "to": to, "status": outcome.status,
                 "details": outcome.details, "rule": outcome.rule_id, "tag": batch.request.tag,
                 "segments": batch.segments, "acceptedAt": accepted, "dueAt": due}
        return due, DocumentWrite(PENDING_REPORTS, _report_key(due, message_id), value)

    async def _store_accepted(self, writes: list[DocumentWrite], due: float | None) -> None:
        """Record an accepted message in one transaction: all of it, or (on a `VersionConflict`) none."""
        await self.store.write_change(writes, [], [], self.resource.clock())
        if due is not None:
            self.on_scheduled(due)

    # delivery reports ----------------------------------------------------------------------------------
    async def deliver_due_reports(self, owner: str = "") -> float | None:
        """Emit every report that is due; return when the next one is (POSIX seconds), or None."""
        after: str | None = None
        while page := await self.store.list_documents(PENDING_REPORTS, after_key=after, limit=100):
            now = self.resource.clock()
            due = [d for d in page if d.value["dueAt"] <= now and d.value.get("leaseUntil", 0) <= now]
            await self._deliver([leased for d in due if (leased := await self._lease(d, owner, now))])
            later = [d.value["dueAt"] for d in page if d.value["dueAt"] > now]
            if later:
                return min(later)
            after = page[-1].key
        return None

    async def _lease(self, doc: Document, owner: str, now: float) -> Document | None:
        leased = doc.value | {"leaseUntil": now + REPORT_LEASE, "owner": owner}
        try:
            return await self.store.put_document(Document(PENDING_REPORTS, doc.key, leased),
                                                 expect_version=doc.version)
        except (VersionConflict, Missing):
            return None  # another node took it

    async def _deliver(self, docs: list[Document]) -> None:
        """Emit each leased report in the transaction that removes it from the pending ones (and notes it on the
        sent message): a report is emitted exactly when it stops pending."""
        emitted = 0
        for doc in docs:
            writes = [DocumentWrite(PENDING_REPORTS, doc.key, None, expect_version=doc.version),
                      *await self._note_report(doc.value)]
            try:
                await self.resource.emit_change(writes, [self._report_event(doc.value)])
                emitted += 1
            except VersionConflict:  # our lease lapsed and another node took the report
                continue
        if emitted:
            log.info("sms delivery reports emitted", extra={"action": "sms_reports_emitted", "count": emitted})

    async def _note_report(self, pending: dict[str, Any]) -> list[DocumentWrite]:
        """The write that keeps the report's outcome with the sent message (shown by the operator console)."""
        try:
            sent = await self.store.get_document(SENT, sent_key(pending["acceptedAt"], pending["messageId"]))
        except Missing:
            return []
        report = {"status": pending["status"], "details": pending["details"],
                  "receivedAt": self.resource.now().isoformat()}
        return [DocumentWrite(SENT, sent.key, sent.value | {"report": report}, expect_version=sent.version)]

    def _report_event(self, pending: dict[str, Any]) -> dict[str, Any]:
        accepted, due = pending["acceptedAt"], pending["dueAt"]
        segments = int(pending["segments"])
        delivered = pending["status"] == "Delivered"
        attempt = DeliveryAttempt(datetime.fromtimestamp(accepted + (due - accepted) / 2, UTC),
                                  segments if delivered else 0, 0 if delivered else segments)
        report = SmsDeliveryReport(
            message_id=pending["messageId"], from_=pending["from"], to=pending["to"], status=pending["status"],
            status_details=pending["details"], received_at=self.resource.now(), attempts=(attempt,),
            tag=pending.get("tag"),
        )
        return self.resource.profile.sms_delivery_report(self.resource.emission(), report)

    async def purge_repeatability(self) -> int:
        """Forget repeatability ids whose tracking window has passed."""
        horizon = self.resource.clock() - 2 * REPEATABILITY_WINDOW.total_seconds()
        purged = 0
        async for doc in self.store.scan_documents(REPEATABILITY, batch=500):
            if doc.value.get("firstSent", 0) < horizon:
                with contextlib.suppress(Missing):
                    await self.store.delete_document(REPEATABILITY, doc.key)
                    purged += 1
        return purged

    # receiving -----------------------------------------------------------------------------------------
    async def receive(self, from_: str, to: str, message: str) -> InboundSms:
        """An SMS from `from_` arrives at the owned number `to`: publish `SMSReceived`."""
        if not is_valid_sender(from_):
            raise BadRequest(f"'{from_}' is not a phone number: use E.164 (+ and 2-15 digits) or a short code.",
                             code="InvalidPhoneNumber")
        await self.numbers.get(to)  # NotFound unless owned
        if utf16_length(message) > MAX_MESSAGE_LENGTH:
            raise ValidationError(
                f"The field Message must be a string with a maximum length of {MAX_MESSAGE_LENGTH}.", target="Message"
            )
        now = self.resource.now()
        sms = InboundSms(new_sms_message_id("Incoming", now), from_, to, message, now, analyze(message).segments)
        await self.resource.emit([self.resource.profile.sms_received(self.resource.emission(), sms)])
        log.info("sms received", extra={"action": "sms_received", "to": to})
        return sms


def sent_key(sent_at: float, message_id: str) -> str:
    """Keys of sent messages sort newest first (milliseconds counted down), so a page lists the latest."""
    return f"{10**13 - 1 - int(sent_at * 1000):013d}/{message_id}"


def _report_key(due: float, message_id: str) -> str:
    """Keys sort by due time (fixed-width seconds), so the worker reads the store in due order."""
    return f"{due:017.6f}/{message_id}"


class SmsWorker:
    """Background task of a serving node: emits due delivery reports and purges old repeatability ids."""

    def __init__(self, service: SmsService, *, poll_interval: float = 1.0, purge_every: float = 60.0) -> None:
        self.service = service
        self.poll_interval = poll_interval
        self.purge_every = purge_every
        self.owner = f"sms-{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.service.on_scheduled = lambda due: self._wake.set()
        self._task = asyncio.create_task(self._run(), name="commgrid-sms-reports")

    async def stop(self) -> None:
        self.service.on_scheduled = lambda due: None
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        clock = self.service.resource.clock
        next_purge = clock()
        while True:
            next_due: float | None = None
            try:
                next_due = await self.service.deliver_due_reports(self.owner)
                if clock() >= next_purge:
                    next_purge = clock() + self.purge_every
                    await self.service.purge_repeatability()
            except Exception:  # the store may be briefly unavailable: retry on the next round
                log.exception("sms report round failed", extra={"action": "sms_reports_failed"})
            wait = self.poll_interval if next_due is None else min(self.poll_interval, max(0.0, next_due - clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()
