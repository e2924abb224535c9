"""The management (ARM) API, driven only through azure-mgmt-eventgrid and azure-mgmt-communication over HTTPS."""

from __future__ import annotations

import ssl
import urllib.request
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from azure.communication.identity import CommunicationIdentityClient
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.eventgrid import EventGridEvent, EventGridPublisherClient
from azure.identity import ClientSecretCredential
from azure.mgmt.communication.models import RegenerateKeyParameters
from azure.mgmt.eventgrid import EventGridManagementClient
from azure.mgmt.eventgrid import models as m

from tests.acceptance.arm import StaticToken, communication_client, eventgrid_client, management
from tests.acceptance.receiver import Receiver
from tests.support import ServerProcess

RG = "commgrid"
ACS_TYPE = "Microsoft.Communication.CommunicationServices"


def webhook(url: str, **kwargs) -> m.EventSubscription:
    return m.EventSubscription(destination=m.WebHookEventSubscriptionDestination(endpoint_url=url), **kwargs)


def test_topic_life_cycle(server: ServerProcess) -> None:
    client = eventgrid_client(server)
    created = client.topics.begin_create_or_update(RG, "arm-orders", m.Topic(location="westeurope")).result()
    assert created.provisioning_state == "Succeeded"
    assert created.input_schema == "EventGridSchema"
    assert created.endpoint == f"{server.https}/topics/arm-orders/api/events"
    assert created.id.endswith(f"/resourceGroups/{RG}/providers/Microsoft.EventGrid/topics/arm-orders")
    again = client.topics.begin_create_or_update(RG, "arm-orders", m.Topic(location="westeurope",
                                                                           tags={"team": "a"})).result()
    assert again.tags == {"team": "a"} and again.id == created.id
    patched = client.topics.begin_update(RG, "arm-orders", m.TopicUpdateParameters(tags={"team": "b"})).result()
    assert patched.tags == {"team": "b"}
    assert client.topics.get(RG, "arm-orders").tags == {"team": "b"}
    assert "arm-orders" in [t.name for t in client.topics.list_by_resource_group(RG)]
    assert "arm-orders" in [t.name for t in client.topics.list_by_subscription()]

    keys = client.topics.list_shared_access_keys(RG, "arm-orders")
    new = client.topics.begin_regenerate_key(RG, "arm-orders", m.TopicRegenerateKeyRequest(key_name="key1")).result()
    assert new.key1 != keys.key1 and new.key2 == keys.key2
    publisher = EventGridPublisherClient(created.endpoint, AzureKeyCredential(new.key1))
    publisher.send(EventGridEvent("/s", "T", {"n": 1}, "1.0"), connection_verify=server.ca)
    with pytest.raises(ClientAuthenticationError):
        EventGridPublisherClient(created.endpoint, AzureKeyCredential(keys.key1)).send(
            EventGridEvent("/s", "T", {}, "1.0"), connection_verify=server.ca)

    client.topics.begin_delete(RG, "arm-orders").result()
    with pytest.raises(ResourceNotFoundError):
        client.topics.get(RG, "arm-orders")
    client.topics.begin_delete(RG, "arm-orders").result()  # already gone: 204


def test_cloudevents_topic_and_paging(server: ServerProcess) -> None:
    client = eventgrid_client(server)
    ce = client.topics.begin_create_or_update(
        RG, "arm-ce", m.Topic(location="local", input_schema="CloudEventSchemaV1_0")).result()
    assert ce.input_schema == "CloudEventSchemaV1_0"
    for i in range(5):
        client.topics.begin_create_or_update(RG, f"arm-page-{i}", m.Topic(location="local")).result()
    names = [t.name for t in client.topics.list_by_resource_group(RG, top=2)]
    assert {f"arm-page-{i}" for i in range(5)} <= set(names)
    assert len(names) == len(set(names))
    first_page = next(client.topics.list_by_resource_group(RG, top=2).by_page())
    assert len(list(first_page)) == 2


def test_errors_are_arm_errors(server: ServerProcess) -> None:
    client = eventgrid_client(server)
    with pytest.raises(ClientAuthenticationError) as denied:
        eventgrid_client(server, token="not-the-token").topics.get(RG, "x")
    assert denied.value.status_code == 401
    with pytest.raises(ResourceNotFoundError) as missing:
        client.topics.get(RG, "no-such-topic")
    assert missing.value.error.code == "ResourceNotFound"
    with pytest.raises(ResourceNotFoundError) as no_group:
        client.topics.get("other-group", "x")
    assert no_group.value.error.code == "ResourceGroupNotFound"
    with pytest.raises(ResourceNotFoundError) as no_sub:
        _other_subscription(server).topics.get(RG, "x")
    assert no_sub.value.error.code == "SubscriptionNotFound"
    with pytest.raises(HttpResponseError) as bad_schema:
        client.topics.begin_create_or_update(RG, "arm-bad", m.Topic(location="l", input_schema="CustomEventSchema"))
    assert bad_schema.value.status_code == 400 and bad_schema.value.error.code == "InvalidInputSchema"
    with pytest.raises(HttpResponseError) as bad_name:
        client.topics.begin_create_or_update(RG, "a_b", m.Topic(location="l"))
    assert bad_name.value.status_code == 400
    with pytest.raises(ResourceExistsError):  # the system topic's name is taken
        client.topics.begin_create_or_update(RG, server.info()["communicationServices"]["systemTopic"]["name"],
                                             m.Topic(location="l"))

    client.topics.begin_create_or_update(RG, "arm-errors", m.Topic(location="l")).result()
    bad = m.EventSubscription(destination=m.WebHookEventSubscriptionDestination(endpoint_url="ftp://x"),
                              retry_policy=m.RetryPolicy(max_delivery_attempts=50))
    with pytest.raises(HttpResponseError) as invalid:
        client.topic_event_subscriptions.begin_create_or_update(RG, "arm-errors", "bad-sub", bad)
    assert invalid.value.status_code == 400
    assert "maxDeliveryAttempts" in str(invalid.value) and "endpointUrl" in str(invalid.value)
    assert len(invalid.value.error.details) == 2
    with pytest.raises(ResourceNotFoundError):
        client.topic_event_subscriptions.get(RG, "arm-errors", "never-made")


def _other_subscription(server: ServerProcess) -> EventGridManagementClient:
    return EventGridManagementClient(StaticToken(management(server)["token"]), "11111111-1111-1111-1111-111111111111",
                                     base_url=server.https, connection_verify=server.ca)


def test_raw_requests_need_a_token_and_an_api_version_and_paths_ignore_case(server: ServerProcess) -> None:
    token = management(server)["token"]
    path = f"/subscriptions/{management(server)['subscriptionId']}/resourceGroups/{RG}/providers/Microsoft.EventGrid"
    with httpx.Client(base_url=server.https, verify=ssl.create_default_context(cafile=server.ca)) as http:
        anonymous = http.get(path + "/topics?api-version=2025-02-15")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        assert anonymous.json()["error"]["code"] == "AuthenticationFailed"
        auth = {"Authorization": f"Bearer {token}"}
        no_version = http.get(path + "/topics", headers=auth)
        assert no_version.status_code == 400 and no_version.json()["error"]["code"] == "MissingApiVersionParameter"
        shouting = http.get(path.upper().replace("/SUBSCRIPTIONS/", "/Subscriptions/") + "/TOPICS?api-version=1",
                            headers=auth)
        assert shouting.status_code == 200 and "value" in shouting.json()
        wrong_method = http.post(path + "/topics?api-version=1", headers=auth)
        assert wrong_method.status_code == 405


def test_subscription_on_a_topic_delivers_through_its_filter(server: ServerProcess, rx: Receiver) -> None:
    client = eventgrid_client(server)
    topic = client.topics.begin_create_or_update(RG, "arm-deliver", m.Topic(location="local")).result()
    url = rx.endpoint("arm-deliver") + "?code=secret"
    sub = m.EventSubscription(
        destination=m.WebHookEventSubscriptionDestination(
            endpoint_url=url, delivery_attribute_mappings=[
                m.StaticDeliveryAttributeMapping(name="X-Secret", value="s3", is_secret=True),
                m.DynamicDeliveryAttributeMapping(name="X-Region", source_field="data.region")]),
        filter=m.EventSubscriptionFilter(included_event_types=["Order.Created"], advanced_filters=[
            m.StringInAdvancedFilter(key="data.region", values=["eu", "uk"]),
            m.NumberGreaterThanAdvancedFilter(key="data.amount", value=100)]),
        labels=["arm"], retry_policy=m.RetryPolicy(max_delivery_attempts=5, event_time_to_live_in_minutes=60))
    created = client.topic_event_subscriptions.begin_create_or_update(RG, "arm-deliver", "filtered", sub).result()
    assert created.provisioning_state == "Succeeded"
    assert created.destination.endpoint_base_url == rx.endpoint("arm-deliver")
    assert created.topic == topic.id
    assert created.retry_policy.max_delivery_attempts == 5
    assert client.event_subscriptions.get_full_url(topic.id, "filtered").endpoint_url == url
    attributes = client.event_subscriptions.get_delivery_attributes(topic.id, "filtered").value
    assert [(a.name, a.type) for a in attributes] == [("X-Secret", "Static"), ("X-Region", "Dynamic")]
    assert attributes[0].value == "s3" and attributes[1].source_field == "data.region"
    shown = client.event_subscriptions.get(topic.id, "filtered")
    assert shown.destination.delivery_attribute_mappings[0].value is None  # secrets are not shown

    publisher = EventGridPublisherClient(topic.endpoint, AzureKeyCredential(
        client.topics.list_shared_access_keys(RG, "arm-deliver").key1))
    publisher.send([EventGridEvent("/o/1", "Order.Created", {"region": "eu", "amount": 150}, "1.0"),
                    EventGridEvent("/o/2", "Order.Created", {"region": "us", "amount": 150}, "1.0"),
                    EventGridEvent("/o/3", "Order.Created", {"region": "uk", "amount": 10}, "1.0"),
                    EventGridEvent("/o/4", "Order.Deleted", {"region": "eu", "amount": 150}, "1.0")],
                   connection_verify=server.ca)
    (event,) = rx.wait_events("arm-deliver", 1)
    assert event["subject"] == "/o/1"
    (request,) = rx.received("arm-deliver")
    assert request.headers["x-secret"] == "s3" and request.headers["x-region"] == "eu"

    updated = client.event_subscriptions.begin_update(
        topic.id, "filtered", m.EventSubscriptionUpdateParameters(labels=["arm", "patched"])).result()
    assert updated.labels == ["arm", "patched"]
    assert updated.filter.included_event_types == ["Order.Created"]  # PATCH keeps what it does not name
    assert updated.destination.endpoint_base_url == rx.endpoint("arm-deliver")

    listed = {
        "topic": client.topic_event_subscriptions.list(RG, "arm-deliver"),
        "resource group": client.event_subscriptions.list_global_by_resource_group(RG),
        "subscription": client.event_subscriptions.list_global_by_subscription(),
        "resource": client.event_subscriptions.list_by_resource(RG, "Microsoft.EventGrid", "topics", "arm-deliver"),
    }
    for where, items in listed.items():
        assert "filtered" in [s.name for s in items], where

    client.event_subscriptions.begin_delete(topic.id, "filtered").result()
    with pytest.raises(ResourceNotFoundError):
        client.topic_event_subscriptions.get(RG, "arm-deliver", "filtered")


ALL_OPERATORS = [
    m.NumberInAdvancedFilter(key="data.a", values=[1.0]),
    m.NumberNotInAdvancedFilter(key="data.a", values=[2.0]),
    m.NumberLessThanAdvancedFilter(key="data.a", value=3.0),
    m.NumberGreaterThanAdvancedFilter(key="data.a", value=0.5),
    m.NumberLessThanOrEqualsAdvancedFilter(key="data.a", value=3.0),
    m.NumberGreaterThanOrEqualsAdvancedFilter(key="data.a", value=1.0),
    m.NumberInRangeAdvancedFilter(key="data.a", values=[[0.0, 5.0]]),
    m.NumberNotInRangeAdvancedFilter(key="data.a", values=[[10.0, 20.0]]),
    m.BoolEqualsAdvancedFilter(key="data.b", value=True),
    m.StringInAdvancedFilter(key="data.s", values=["hello"]),
    m.StringNotInAdvancedFilter(key="data.s", values=["bye"]),
    m.StringBeginsWithAdvancedFilter(key="data.s", values=["he"]),
    m.StringNotBeginsWithAdvancedFilter(key="data.s", values=["x"]),
    m.StringEndsWithAdvancedFilter(key="data.s", values=["lo"]),
    m.StringNotEndsWithAdvancedFilter(key="data.s", values=["x"]),
    m.StringContainsAdvancedFilter(key="data.s", values=["ell"]),
    m.StringNotContainsAdvancedFilter(key="data.s", values=["x"]),
    m.IsNotNullAdvancedFilter(key="data.s"),
    m.IsNullOrUndefinedAdvancedFilter(key="data.missing"),
]


def test_every_advanced_filter_operator_round_trips(server: ServerProcess, rx: Receiver) -> None:
    client = eventgrid_client(server)
    topic = client.topics.begin_create_or_update(RG, "arm-filters", m.Topic(location="local")).result()
    filt = m.EventSubscriptionFilter(subject_begins_with="/a", subject_ends_with=".json",
                                     is_subject_case_sensitive=True, enable_advanced_filtering_on_arrays=True,
                                     advanced_filters=ALL_OPERATORS)
    client.event_subscriptions.begin_create_or_update(
        topic.id, "all-operators", webhook(rx.endpoint("arm-filters"), filter=filt)).result()
    got = client.event_subscriptions.get(topic.id, "all-operators").filter
    assert got.subject_begins_with == "/a" and got.subject_ends_with == ".json"
    assert got.is_subject_case_sensitive is True and got.enable_advanced_filtering_on_arrays is True
    assert [f.as_dict() for f in got.advanced_filters] == [f.as_dict() for f in ALL_OPERATORS]

    key = client.topics.list_shared_access_keys(RG, "arm-filters").key1
    EventGridPublisherClient(topic.endpoint, AzureKeyCredential(key)).send(
        [EventGridEvent("/a/no.json", "T", {"a": 1, "b": True, "s": "nope"}, "1.0"),
         EventGridEvent("/a/yes.json", "T", {"a": 1, "b": True, "s": "hello"}, "1.0")], connection_verify=server.ca)
    (event,) = rx.wait_events("arm-filters", 1)
    assert event["subject"] == "/a/yes.json"


def test_awaiting_manual_action_completes_through_the_validation_url(server: ServerProcess, rx: Receiver) -> None:
    client = eventgrid_client(server)
    topic = client.topics.begin_create_or_update(RG, "arm-manual", m.Topic(location="local")).result()
    poller = client.event_subscriptions.begin_create_or_update(
        topic.id, "manual", webhook(rx.endpoint("arm-manual", validation="manual")))
    assert not poller.done()
    assert client.event_subscriptions.get(topic.id, "manual").provisioning_state == "AwaitingManualAction"
    (validation,) = rx.received("arm-manual", "SubscriptionValidation")
    with urllib.request.urlopen(validation.json()[0]["data"]["validationUrl"], timeout=5) as response:
        assert response.status == 200
    assert poller.result(timeout=20).provisioning_state == "Succeeded"


def test_failed_handshake_is_a_clear_error(server: ServerProcess, rx: Receiver) -> None:
    client = eventgrid_client(server)
    topic = client.topics.begin_create_or_update(RG, "arm-fail", m.Topic(location="local")).result()
    with pytest.raises(HttpResponseError) as failed:
        client.event_subscriptions.begin_create_or_update(topic.id, "refused",
                                                          webhook(rx.endpoint("arm-fail", validation="fail")))
    assert failed.value.status_code == 400 and "Webhook validation handshake failed" in str(failed.value)
    # a failed subscription is replaced by the next create
    fixed = client.event_subscriptions.begin_create_or_update(topic.id, "refused", webhook(rx.endpoint("arm-ok")))
    assert fixed.result().provisioning_state == "Succeeded"


def test_system_topic_and_subscriptions_on_the_communication_resource(server: ServerProcess, rx: Receiver) -> None:
    client = eventgrid_client(server)
    info = server.info()["communicationServices"]
    system = client.system_topics.get(RG, info["systemTopic"]["name"])
    assert system.source == info["armId"] and system.topic_type == ACS_TYPE
    assert [t.name for t in client.system_topics.list_by_subscription()] == [system.name]
    assert [t.name for t in client.system_topics.list_by_resource_group(RG)] == [system.name]
    confirmed = client.system_topics.begin_create_or_update(
        RG, system.name, m.SystemTopic(location="global", source=info["armId"], topic_type=ACS_TYPE,
                                       tags={"env": "ci"})).result()
    assert confirmed.tags == {"env": "ci"}
    with pytest.raises(ResourceExistsError):
        client.system_topics.begin_create_or_update(
            RG, "another-name", m.SystemTopic(location="global", source=info["armId"], topic_type=ACS_TYPE))

    by_topic = client.system_topic_event_subscriptions.begin_create_or_update(
        RG, system.name, "sms-events", webhook(rx.endpoint("arm-acs"), filter=m.EventSubscriptionFilter(
            included_event_types=["Microsoft.Communication.SMSReceived"]))).result()
    assert by_topic.provisioning_state == "Succeeded" and by_topic.id.startswith(system.id)
    by_scope = client.event_subscriptions.begin_create_or_update(
        info["armId"], "all-acs", webhook(rx.endpoint("arm-acs-all"))).result()
    assert by_scope.provisioning_state == "Succeeded"
    names = [s.name for s in client.system_topic_event_subscriptions.list_by_system_topic(RG, system.name)]
    assert {"sms-events", "all-acs"} <= set(names)
    assert client.system_topic_event_subscriptions.get_full_url(RG, system.name, "sms-events").endpoint_url == \
        rx.endpoint("arm-acs")
    client.system_topic_event_subscriptions.begin_delete(RG, system.name, "sms-events").result()
    client.event_subscriptions.begin_delete(info["armId"], "all-acs").result()
    remaining = client.system_topic_event_subscriptions.list_by_system_topic(RG, system.name)
    assert not {"sms-events", "all-acs"} & {s.name for s in remaining}

    updated = client.system_topics.begin_update(RG, system.name, m.SystemTopicUpdateParameters(
        tags={"env": "test"})).result()
    assert updated.tags == {"env": "test"}
    client.system_topic_event_subscriptions.begin_create_or_update(
        RG, system.name, "short-lived", webhook(rx.endpoint("arm-acs"))).result()
    client.system_topics.begin_delete(RG, system.name).result()  # its subscriptions go; the topic stays
    assert list(client.system_topic_event_subscriptions.list_by_system_topic(RG, system.name)) == []
    assert client.system_topics.get(RG, system.name).source == info["armId"]


def test_expiration_and_schema_round_trip(server: ServerProcess, rx: Receiver) -> None:
    client = eventgrid_client(server)
    topic = client.topics.begin_create_or_update(RG, "arm-expire", m.Topic(location="local")).result()
    expires = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    got = client.event_subscriptions.begin_create_or_update(topic.id, "soon", webhook(
        rx.endpoint("arm-expire"), expiration_time_utc=expires, event_delivery_schema="CloudEventSchemaV1_0")).result()
    assert got.expiration_time_utc == expires
    assert got.event_delivery_schema == "CloudEventSchemaV1_0"


def test_communication_resource_keys(server: ServerProcess) -> None:
    client = communication_client(server)
    name = server.info()["communicationServices"]["resourceName"]
    resource = client.communication_services.get(RG, name)
    assert resource.properties.host_name == server.https.removeprefix("https://")
    assert [r.name for r in client.communication_services.list_by_resource_group(RG)] == [name]
    keys = client.communication_services.list_keys(RG, name)
    assert keys.primary_connection_string == server.info()["communicationServices"]["connectionString"]
    with pytest.raises(ResourceNotFoundError):
        client.communication_services.get(RG, "not-" + name)

    new = client.communication_services.regenerate_key(RG, name, RegenerateKeyParameters(key_type="Primary"))
    assert new.primary_key != keys.primary_key and new.secondary_key == keys.secondary_key
    user = CommunicationIdentityClient.from_connection_string(
        new.primary_connection_string, connection_verify=server.ca).create_user()
    assert user.properties["id"].startswith("8:acs:")
    with pytest.raises(ClientAuthenticationError):
        CommunicationIdentityClient.from_connection_string(
            keys.primary_connection_string, connection_verify=server.ca).create_user()


def test_a_chosen_management_token_replaces_the_recorded_one(tmp_path) -> None:
    node = ServerProcess(tmp_path / "chosen", extra_args=("--management-token", "chosen-token-123")).start()
    try:
        assert management(node)["token"] == "chosen-token-123"
        assert list(eventgrid_client(node, token="chosen-token-123").topics.list_by_subscription()) == []
    finally:
        node.stop()


def test_azure_identity_credentials_get_management_tokens_from_commgrid(server: ServerProcess) -> None:
    mgmt = management(server)
    credential = ClientSecretCredential("commgrid", "my-app", mgmt["token"], authority=server.https,
                                        disable_instance_discovery=True, connection_verify=server.ca)
    client = EventGridManagementClient(credential, mgmt["subscriptionId"], base_url=server.https,
                                       connection_verify=server.ca)
    client.topics.begin_create_or_update(RG, "arm-entra", m.Topic(location="local")).result()
    assert "arm-entra" in [t.name for t in client.topics.list_by_resource_group(RG)]
    wrong = ClientSecretCredential("commgrid", "my-app", "not-the-token", authority=server.https,
                                   disable_instance_discovery=True, connection_verify=server.ca)
    with pytest.raises(ClientAuthenticationError):
        wrong.get_token("https://management.azure.com/.default")
    other = credential.get_token("https://communication.azure.com//.default").token  # another audience
    with pytest.raises(ClientAuthenticationError):
        eventgrid_client(server, token=other).topics.get(RG, "arm-entra")
