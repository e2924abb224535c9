"""An application's own test, written as a commgrid user would write it: only the documented fixtures."""

from azure.core.credentials import AzureKeyCredential
from azure.eventgrid import EventGridEvent, EventGridPublisherClient


def test_an_order_event_reaches_the_handler(commgrid, event_sink):
    topic = commgrid.create_topic("orders")
    commgrid.subscribe("orders", "order-handler", event_sink.url,
                       filter={"includedEventTypes": ["Shop.OrderCreated"]})

    client = EventGridPublisherClient(topic.endpoint, AzureKeyCredential(topic.key1))
    client.send([EventGridEvent("/orders/42", "Shop.OrderCreated", {"total": 12.5}, "1.0"),
                 EventGridEvent("/orders/42", "Shop.OrderDeleted", {}, "1.0")], connection_verify=commgrid.ca)

    event = event_sink.wait_for(type="Shop.OrderCreated", subject="/orders/42", timeout=10)
    assert event["data"] == {"total": 12.5}
