"""`commgrid.testing` without pytest's fixtures: a server and a webhook sink, as a user's harness would use them."""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import time

import pytest
from azure.communication.sms import SmsClient
from azure.core.credentials import AzureKeyCredential
from azure.eventgrid import EventGridPublisherClient
from cloudevents.http import CloudEvent

from commgrid.testing import EventSink, LoopbackApp, ManagementError, Server

SENDER = "+14255550100"


def test_communication_services_events_reach_the_sink() -> None:
    with Server(phone_numbers=(SENDER,), time_scale=60) as cg, EventSink() as sink:
        cg.subscribe(None, "sms-reports", sink.url,
                     filter={"includedEventTypes": ["Microsoft.Communication.SMSDeliveryReportReceived"]})
        sms = SmsClient.from_connection_string(cg.connection_string, connection_verify=cg.ca)
        [sent] = sms.send(from_=SENDER, to="+14255550111", message="hi", enable_delivery_report=True)
        report = sink.wait_for(type="Microsoft.Communication.SMSDeliveryReportReceived", timeout=15)
        data = {k.lower(): v for k, v in report["data"].items()}  # the seed profile spells them MessageId, …
        assert data["messageid"] == sent.message_id
        assert data["deliverystatus"] == "Delivered"
        data_dir = cg.data_dir
    assert data_dir is not None and not data_dir.exists()  # a temporary data dir goes with the server


def test_cloudevents_subscriptions_and_wait_for_timeouts() -> None:
    with Server() as cg, EventSink() as sink:
        topic = cg.create_topic("ce-orders", input_schema="CloudEventSchemaV1_0")
        cg.subscribe("ce-orders", "ce-handler", sink.url, eventDeliverySchema="CloudEventSchemaV1_0")
        client = EventGridPublisherClient(topic.endpoint, AzureKeyCredential(topic.key1))
        client.send(CloudEvent({"type": "Shop.OrderCreated", "source": "/shop", "subject": "/o/1"}, {"n": 1}),
                    connection_verify=cg.ca)
        event = sink.wait_for(type="Shop.OrderCreated", subject="/o/1")
        assert event["specversion"] == "1.0" and event["data"] == {"n": 1}
        with pytest.raises(TimeoutError, match=r"Shop\.OrderCreated"):
            sink.wait_for(type="Shop.Never", timeout=0.3)
        with pytest.raises(ManagementError) as refused:
            cg.subscribe("ce-orders", "bad", "ftp://nowhere")
        assert refused.value.status == 400


def test_a_loopback_app_ends_the_handlers_of_connections_already_gone(caplog: pytest.LogCaptureFixture) -> None:
    """A webhook told to hang keeps its handler waiting after the client hangs up (aiohttp does not cancel it),
    and the runner's cleanup no longer sees that connection: stopping must still end the handler, rather than
    leave it to be reported as destroyed."""
    arrived = threading.Event()

    async def hang(_request: object) -> None:
        arrived.set()
        await asyncio.sleep(3600)

    app = LoopbackApp(hang).start()
    with socket.create_connection(("127.0.0.1", app.port)) as client:
        client.sendall(b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        assert arrived.wait(5)
    time.sleep(0.1)  # the server sees the connection go
    app.stop()
    assert app._thread is not None and not app._thread.is_alive()
    del app  # it keeps its loop, and the loop the tasks
    gc.collect()  # a task left pending is reported when it is collected
    assert not [r for r in caplog.records if "Task was destroyed" in r.getMessage()]
