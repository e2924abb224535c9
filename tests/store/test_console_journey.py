"""Journeys built over a real store (both backends): every state a subscription's part can be in."""

from __future__ import annotations

from dataclasses import replace

from commgrid.console.journey import journey, journey_lines
from commgrid.grid.properties import EventFilter
from commgrid.store import Store
from commgrid.store.base import Attempt, AttemptRecord, NewEvent, Route, Subscription
from tests.store.test_contract import NOW, PROPS, topic


def sub(name: str, *, status: str = "Active", created: float = NOW - 10, **filter_: object) -> Subscription:
    return Subscription(topic="orders", name=name, properties=replace(PROPS, filter=EventFilter(**filter_)),
                        status=status, created_at=created, updated_at=created)


async def test_each_subscription_says_how_delivery_went_or_why_it_was_not_matched(store: Store) -> None:
    await store.create_topic(topic())
    for s in (sub("done"), sub("waiting"), sub("retrying"), sub("dead"), sub("other", subject_begins_with="/x/"),
              sub("later", created=NOW + 10), sub("paused", status="AwaitingManualAction")):
        await store.create_subscription(s)
    body = b'{"id":"e1","subject":"/orders/1","eventType":"Order.Created","data":{}}'
    routes = [Route(0, n) for n in ("done", "waiting", "retrying", "dead")]
    await store.append_events([NewEvent("orders", "e1", "Order.Created", "/orders/1", "t", body)], routes, NOW)
    seq = (await store.events_after(0))[0].seq
    pending = {d.subscription: d.id for d in await store.event_deliveries(seq)}
    await store.complete_deliveries([pending["done"]])
    await store.reschedule_deliveries([pending["retrying"]], Attempt("Busy", 503, NOW + 1), NOW + 11)
    await store.dead_letter_deliveries([pending["dead"]], "MaxDeliveryAttemptsExceeded", NOW + 2,
                                       Attempt("BadRequest", 400, NOW + 2))
    await store.record_attempts([
        AttemptRecord("orders", "done", seq, 1, NOW + 1, "Succeeded", 200, 0.01),
        AttemptRecord("orders", "retrying", seq, 1, NOW + 1, "Busy", 503, 0.02, response="try later"),
        AttemptRecord("orders", "dead", seq, 1, NOW + 2, "BadRequest", 400, 0.03, response="bad field"),
    ], keep=100)

    j = await journey(store, await store.event_by_seq(seq), now=NOW + 3)
    parts = {r["subscription"]: r for r in j["subscriptions"]}
    assert {n: (r["state"], r["matched"]) for n, r in parts.items()} == {
        "done": ("delivered", True), "waiting": ("pending", True), "retrying": ("retrying", True),
        "dead": ("dead-lettered", True), "other": ("not matched", False), "later": ("not routed", True),
        "paused": ("not routed", True)}
    assert parts["other"]["reason"] == "subjectBeginsWith '/x/' does not match subject '/orders/1'"
    assert parts["later"]["reason"] == "the subscription was created after this event"
    assert parts["paused"]["reason"] == "the subscription is AwaitingManualAction: only Active ones get events"
    assert parts["retrying"]["attempts"][0] | {"at": None} == {
        "attempt": 1, "at": None, "outcome": "Busy", "status": 503, "durationMs": 20.0, "error": None,
        "response": "try later"}
    assert parts["retrying"]["nextAttemptAt"].startswith("2023-11-14T22:13:31")
    assert parts["dead"]["deadLetter"]["reason"] == "MaxDeliveryAttemptsExceeded"
    assert j["event"]["body"]["id"] == "e1" and j["topic"]["name"] == "orders"
    text = "\n".join(journey_lines(j))
    assert "subscription other [Active]: not matched - subjectBeginsWith '/x/'" in text
    assert "attempt 1" in text and "HTTP 503" in text and "try later" in text and "next attempt at" in text
