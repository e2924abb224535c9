"""The operator console in a real browser: live events, an event's journey, redelivery and an inbound SMS.

A real `commgrid serve` (time scale 600: the retry ladder runs in milliseconds) and a real webhook receiver;
events are published with the official SDK. The screenshots in docs/ come from these tests.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.communication.chat import ChatClient, ChatParticipant, ChatThreadClient, CommunicationTokenCredential
from azure.communication.identity import CommunicationIdentityClient
from azure.communication.sms import SmsClient
from azure.core.pipeline.transport import RequestsTransport
from azure.eventgrid import EventGridEvent
from playwright.sync_api import Browser, Page, expect

from tests.acceptance.acs_helpers import Acs
from tests.acceptance.receiver import Receiver
from tests.acceptance.subscribing import publish, subscribe
from tests.support import ServerProcess

NUMBER = "+15555550100"
TIMEOUT = 15_000  # ms, for every wait on the page


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("console"),
                       extra_args=("--time-scale", "600", "--phone-number", NUMBER)) as proc:
        yield proc


@pytest.fixture(scope="module")
def rx() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def orders(server: ServerProcess, rx: Receiver) -> dict[str, Any]:
    topic = server.create_topic("orders")
    subscribe(server, "orders", "fulfilment", rx.endpoint("fulfilment") + "?code=s3cret")
    subscribe(server, "orders", "billing", rx.endpoint("billing", status=500, body="billing is down for maintenance"),
              "--max-delivery-attempts", "3")
    subscribe(server, "orders", "shipping", rx.endpoint("shipping"), "--included-event-types", "Order.Shipped")
    return topic


@pytest.fixture
def page(browser: Browser, server: ServerProcess) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT)
    tab.goto(f"{server.http}/dashboard")
    expect(tab.locator("#live")).to_have_text("live")
    yield tab
    context.close()


def test_a_published_event_appears_live_and_its_journey_explains_every_subscription(
        page: Page, server: ServerProcess, rx: Receiver, orders: dict[str, Any], screenshots: Path) -> None:
    sent = EventGridEvent(subject="/orders/42", event_type="Order.Created", data={"total": 99.5}, data_version="1")
    publish(orders, [EventGridEvent(subject="/orders/41", event_type="Order.Shipped", data={}, data_version="1"),
                     EventGridEvent(subject="/orders/40", event_type="Order.Paid", data={}, data_version="1"), sent])
    row = page.locator(f'#events tr[data-id="{sent.id}"]')
    expect(row).to_be_visible()  # no reload: it came over the live stream
    page.screenshot(path=screenshots / "console-events.png")

    row.click()
    journey = page.locator("#journey")
    expect(journey.locator('.route[data-subscription="fulfilment"]')).to_have_attribute("data-state", "delivered")
    billing = journey.locator('.route[data-subscription="billing"]')
    expect(billing).to_have_attribute("data-state", "dead-lettered")
    expect(billing.locator("tr.attempt")).to_have_count(3)
    expect(billing.locator("tr.attempt").first).to_contain_text("500")
    expect(billing.locator("tr.attempt").first).to_contain_text("billing is down for maintenance")
    expect(billing).to_contain_text("MaxDeliveryAttemptsExceeded")
    shipping = journey.locator('.route[data-subscription="shipping"]')
    expect(shipping).to_have_attribute("data-state", "not matched")
    expect(shipping.locator(".reason")).to_have_text(
        "includedEventTypes ['Order.Shipped'] does not include event type 'Order.Created'")
    assert "s3cret" not in page.content()  # endpoints are shown without their query string
    page.screenshot(path=screenshots / "console-journey.png", full_page=True)

    page.goto(f"{server.http}/dashboard#topics")
    card = page.locator('#subscriptions .card[data-subscription="fulfilment"]')
    expect(card).to_contain_text(rx.endpoint("fulfilment"))
    expect(card).to_contain_text("Succeeded 200")
    expect(page.locator('#subscriptions .card[data-subscription="billing"]')).to_contain_text("Busy 500")
    assert "s3cret" not in page.content()
    page.screenshot(path=screenshots / "console-topics.png", full_page=True)

    shown = server.cli("events", "show", str(sent.id)).stdout  # the CLI tells the same story
    assert "subscription billing [Active]: dead-lettered" in shown
    assert "includedEventTypes ['Order.Shipped'] does not include event type 'Order.Created'" in shown
    assert "attempt 3" in shown and "HTTP 500" in shown and "billing is down for maintenance" in shown


def test_a_dead_letter_is_redelivered_from_the_page(page: Page, server: ServerProcess, rx: Receiver,
                                                    orders: dict[str, Any], screenshots: Path) -> None:
    sent = EventGridEvent(subject="/orders/7", event_type="Order.Created", data={"total": 1}, data_version="1")
    publish(orders, sent)
    page.goto(f"{server.http}/dashboard#deadletters")
    letter = page.locator("#deadletters tbody tr", has_text=str(sent.id))
    expect(letter).to_contain_text("MaxDeliveryAttemptsExceeded")
    page.screenshot(path=screenshots / "console-deadletters.png", full_page=True)

    rx.behave("billing", status=200, body="")
    letter.get_by_role("button", name="Redeliver").click()
    rx.wait(lambda: any(e["id"] == str(sent.id) for e in rx.events("billing")), what="the redelivered event")
    expect(letter).to_have_count(0)

    earlier = set(page.locator("#deadletters tbody tr td:nth-child(4)").all_inner_texts())
    assert len(earlier) == 3  # the first test's three events, dead-lettered at billing
    clicked = time.time()
    page.get_by_role("button", name="Redeliver all of orders / billing").click()
    expect(page.locator("#deadletters tbody tr")).to_have_count(0)

    def redelivered() -> set[str]:
        return {e["id"] for r in rx.received("billing") if r.at >= clicked for e in r.events()}

    rx.wait(lambda: earlier <= redelivered(), what="every dead letter of billing redelivered")


def test_an_inbound_sms_from_the_form_reaches_a_webhook(page: Page, server: ServerProcess, rx: Receiver,
                                                       screenshots: Path) -> None:
    system_topic = server.info()["communicationServices"]["systemTopic"]["name"]
    subscribe(server, system_topic, "sms-in", rx.endpoint("sms-in"),
              "--included-event-types", "Microsoft.Communication.SMSReceived")
    acs = Acs(server)
    transport = RequestsTransport(connection_verify=acs.ca)
    identities = CommunicationIdentityClient.from_connection_string(acs.connection_string, transport=transport)
    user, token = identities.create_user_and_token(["chat"])
    chat = ChatClient(server.https, CommunicationTokenCredential(token.token), connection_verify=acs.ca)
    thread = chat.create_chat_thread("Delivery questions", thread_participants=[
        ChatParticipant(identifier=user, display_name="Ada")]).chat_thread
    ChatThreadClient(server.https, CommunicationTokenCredential(token.token), thread.id,
                     connection_verify=acs.ca).send_message("Where is order 42?", sender_display_name="Ada")
    sent = SmsClient.from_connection_string(acs.connection_string, transport=transport).send(
        from_=NUMBER, to="+14255550123", message="Your code is 1234", enable_delivery_report=True)[0]
    text = f"hello from the console {uuid.uuid4().hex[:6]}"
    page.goto(f"{server.http}/dashboard#communication")
    expect(page.locator("#numbers")).to_contain_text(NUMBER)
    expect(page.locator("#sms-sent tr", has_text=sent.message_id)).to_contain_text("Delivered")
    expect(page.locator("#identities")).to_contain_text(user.properties["id"])
    expect(page.locator("#threads .card", has_text="Delivery questions")).to_contain_text("Ada: Where is order 42?")
    page.fill("#sms-form input[name=from]", "+14255550123")
    page.select_option("#sms-to", NUMBER)
    page.fill("#sms-form input[name=message]", text)
    page.click("#sms-form button")
    expect(page.locator("#sms-result")).to_contain_text("Received Incoming_")
    (event,) = rx.wait(lambda: [e for e in rx.events("sms-in") if _data(e)["message"] == text], what="SMSReceived")
    assert event["eventType"] == "Microsoft.Communication.SMSReceived"
    data = _data(event)  # the default (seed) profile writes the numbers without their '+'
    assert (data["from"].lstrip("+"), data["to"].lstrip("+")) == ("14255550123", NUMBER.lstrip("+"))
    page.screenshot(path=screenshots / "console-communication.png", full_page=True)


def _data(event: dict[str, Any]) -> dict[str, Any]:
    return {k.lower(): v for k, v in event["data"].items()}


def test_actions_refuse_cross_site_requests(server: ServerProcess) -> None:
    request = urllib.request.Request(f"{server.http}/dashboard/api/deadletters/redeliver", method="POST",
                                     data=json.dumps({"ids": [1]}).encode(),
                                     headers={"Content-Type": "application/json", "Origin": "https://evil.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 403
    assert json.loads(refused.value.read())["error"]["code"] == "CrossSiteRequestRejected"
