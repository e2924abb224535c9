"""Endpoint validation before a webhook gets events, and the goodbye when its subscription is deleted.

- Event Grid schema (https://learn.microsoft.com/azure/event-grid/end-point-validation-event-grid-events-schema):
  POST a `Microsoft.EventGrid.SubscriptionValidationEvent`.
  200 with `{"validationResponse": <code>}` validates at once; 200 without it waits for a GET on the
  `validationUrl` (`AwaitingManualAction`); any other answer, or none, fails. A request that got no answer
  is tried once more after 5 s if the 30 s budget allows.
- CloudEvents 1.0 (https://learn.microsoft.com/azure/event-grid/end-point-validation-cloud-events-schema):
  the abuse-protection `OPTIONS` with `WebHook-Request-Origin: eventgrid.azure.net`;
  a 2xx with `WebHook-Allowed-Origin` equal to that origin or `*` validates. The asynchronous
  `WebHook-Request-Callback` consent is not offered.
- Deletion: a best-effort `Microsoft.EventGrid.SubscriptionDeletedEvent` with `aeg-event-type:
  SubscriptionDeletion` (EventGridSystemEvents spec) to a validated endpoint, one attempt.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from commgrid.events.envelope import CLOUDEVENT_JSON, CLOUDEVENTS, EVENTGRID_JSON, convert
from commgrid.grid.excerpt import read_excerpt
from commgrid.grid.properties import ACTIVE, AWAITING, FAILED, base_url
from commgrid.grid.retry import outcome_of_error
from commgrid.timestamps import azure_time

log = logging.getLogger("commgrid.delivery")

ORIGIN = "eventgrid.azure.net"
VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
DELETED_EVENT = "Microsoft.EventGrid.SubscriptionDeletedEvent"
_TROUBLESHOOT = "For troubleshooting, visit https://aka.ms/esvalidation."


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    state: str  # ACTIVE, AWAITING or FAILED
    message: str


def _failed(url: str, what: str) -> HandshakeResult:
    stamp = azure_time(time.time())
    return HandshakeResult(FAILED, f"Webhook validation handshake failed for {base_url(url)}. {what} {_TROUBLESHOOT}"
                                   f" Activity id: {uuid.uuid4()}, timestamp: {stamp}")


def system_headers(event_type: str, subscription: str, delivery_count: int = 0) -> dict[str, str]:
    return {"aeg-event-type": event_type, "aeg-subscription-name": subscription.upper(),
            "aeg-delivery-count": str(delivery_count), "aeg-data-version": "1", "aeg-metadata-version": "1"}


def validation_event(topic_arm_id: str, code: str, validation_url: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "topic": topic_arm_id, "subject": "",
            "data": {"validationCode": code, "validationUrl": validation_url},
            "eventType": VALIDATION_EVENT, "eventTime": azure_time(time.time()), "metadataVersion": "1",
            "dataVersion": "1"}


async def validate_eventgrid(
    session: aiohttp.ClientSession, url: str, subscription: str, event: dict[str, Any], *,
    timeout: float, retry_after: float, window: str = "10 minutes",
) -> HandshakeResult:
    """POST the validation event and judge the answer (endpoint validation article)."""
    code = event["data"]["validationCode"]
    body = orjson.dumps([event])
    headers = {"Content-Type": EVENTGRID_JSON, **system_headers("SubscriptionValidation", subscription)}
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with session.post(url, data=body, headers=headers, allow_redirects=False,
                                    timeout=aiohttp.ClientTimeout(total=max(deadline - time.monotonic(), 0.1))
                                    ) as response:
                status, text = response.status, (await read_excerpt(response)).decode(errors="replace")
            break
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            outcome = outcome_of_error(exc)
            if time.monotonic() + retry_after >= deadline:
                return _failed(url, f"Http POST request failed with response code Unknown ({outcome.name}).")
            log.info("validation request got no response; retrying", extra={
                "action": "validation_retry", "subscription": subscription, "outcome": outcome.name})
            await asyncio.sleep(retry_after)
    if status != 200:
        return _failed(url, f"Http POST request failed with response code {status}.")
    answer = _validation_response(text)
    if answer is None:
        return HandshakeResult(AWAITING, (
            f"Http POST request to {base_url(url)} returned 2XX response with response body {text[:200]}. When a"
            " validation request is accepted without validation code in the response body, Http GET is expected"
            f" on the validation url included in the validation event (within {window})."))
    if answer != code:
        return _failed(url, f"The validationResponse '{answer[:100]}' does not match the validationCode sent.")
    return HandshakeResult(ACTIVE, "Validated: the endpoint answered with the validation code.")


def _validation_response(text: str) -> str | None:
    try:
        body = orjson.loads(text) if text.strip() else None
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict):
        return None
    value = next((v for k, v in body.items() if k.lower() == "validationresponse"), None)
    return value if isinstance(value, str) else None


async def validate_cloudevents(session: aiohttp.ClientSession, url: str, *, timeout: float) -> HandshakeResult:
    """The CloudEvents abuse-protection OPTIONS handshake (CloudEvents endpoint validation)."""
    headers = {"WebHook-Request-Origin": ORIGIN}
    try:
        async with session.options(url, headers=headers, allow_redirects=False,
                                   timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            status, allowed = response.status, response.headers.get("WebHook-Allowed-Origin")
            await read_excerpt(response)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        return _failed(url, f"Http OPTIONS request failed with response code Unknown ({outcome_of_error(exc).name}).")
    if not 200 <= status < 300:
        return _failed(url, f"Http OPTIONS request failed with response code {status}.")
    origins = {o.strip().lower() for o in (allowed or "").split(",")}
    if not origins & {ORIGIN, "*"}:
        return _failed(url, f"Http OPTIONS response did not allow origin {ORIGIN} (WebHook-Allowed-Origin:"
                            f" {allowed or 'absent'}).")
    return HandshakeResult(ACTIVE, f"Validated: the endpoint allowed WebHook-Request-Origin {ORIGIN}.")


async def send_deleted_event(
    session: aiohttp.ClientSession, url: str, subscription: str, subscription_arm_id: str, topic_arm_id: str,
    schema: str, *, timeout: float,
) -> int | None:
    """Tell a validated endpoint its subscription is gone; returns the status, None if it did not answer."""
    event = {"id": str(uuid.uuid4()), "topic": topic_arm_id, "subject": subscription_arm_id,
             "data": {"eventSubscriptionId": subscription_arm_id}, "eventType": DELETED_EVENT,
             "eventTime": azure_time(time.time()), "metadataVersion": "1", "dataVersion": "1"}
    if schema == CLOUDEVENTS:
        body, content_type = orjson.dumps(convert(event, "EventGridSchema", CLOUDEVENTS)), CLOUDEVENT_JSON
    else:
        body, content_type = orjson.dumps([event]), EVENTGRID_JSON
    headers = {"Content-Type": content_type, **system_headers("SubscriptionDeletion", subscription)}
    try:
        async with session.post(url, data=body, headers=headers, allow_redirects=False,
                                timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            await read_excerpt(response)
            return response.status
    except (TimeoutError, aiohttp.ClientError, OSError):
        return None
