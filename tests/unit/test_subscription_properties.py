"""Event subscription properties: Azure's ranges and defaults, clear errors, the subject warning, CLI parsing."""

from __future__ import annotations

from typing import Any

import pytest
import typer

from commgrid.commands.subscriptions import parse_advanced_filter, parse_attribute_mapping, storage_dead_letter
from commgrid.errors import InvalidInput
from commgrid.grid.properties import SubscriptionProperties
from commgrid.grid.validation import subject_warning, validate_properties

NOW = 1_700_000_000.0  # 2023-11-14
EG, CE = "EventGridSchema", "CloudEventSchemaV1_0"


def webhook(**props: Any) -> dict[str, Any]:
    return {"endpointType": "WebHook", "properties": {"endpointUrl": "https://example.com/hook?code=x", **props}}


def problems(raw: dict[str, Any], schema: str = EG) -> list[str]:
    with pytest.raises(InvalidInput) as raised:
        validate_properties(raw, schema, NOW)
    return [d.message for d in raised.value.details]


def test_defaults_are_filled_in() -> None:
    props = validate_properties({"destination": webhook()}, EG, NOW).to_arm()
    assert props == {
        "destination": {"endpointType": "WebHook", "properties": {
            "endpointUrl": "https://example.com/hook?code=x", "maxEventsPerBatch": 1,
            "preferredBatchSizeInKilobytes": 64}},
        "filter": {"subjectBeginsWith": "", "subjectEndsWith": "", "isSubjectCaseSensitive": False},
        "eventDeliverySchema": EG,
        "retryPolicy": {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440},
    }
    assert validate_properties({"destination": webhook()}, CE, NOW).event_delivery_schema == CE


def test_keys_are_read_case_insensitively_and_normalised() -> None:
    raw = {"Destination": {"EndpointType": "webhook",
                           "Properties": {"EndpointUrl": "http://h/x", "MaxEventsPerBatch": 5}},
           "Filter": {"SubjectBeginsWith": "/a", "IncludedEventTypes": ["T"]},
           "EventDeliverySchema": "cloudeventschemav1_0"}
    props = validate_properties(raw, EG, NOW).to_arm()
    assert props["destination"]["properties"]["maxEventsPerBatch"] == 5
    assert props["filter"] == {"subjectBeginsWith": "/a", "subjectEndsWith": "", "isSubjectCaseSensitive": False,
                               "includedEventTypes": ["T"]}
    assert props["eventDeliverySchema"] == CE


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"destination": webhook(maxEventsPerBatch=0)}, "maxEventsPerBatch must be an integer between 1 and 5000"),
        ({"destination": webhook(maxEventsPerBatch=5001)}, "between 1 and 5000; got 5001"),
        ({"destination": webhook(preferredBatchSizeInKilobytes=1025)}, "between 1 and 1024"),
        ({"destination": webhook(), "retryPolicy": {"maxDeliveryAttempts": 31}}, "between 1 and 30"),
        ({"destination": webhook(), "retryPolicy": {"eventTimeToLiveInMinutes": 0}}, "between 1 and 1440"),
        ({"destination": webhook(), "retryPolicy": {"maxDeliveryAttempts": True}}, "between 1 and 30"),
        ({"destination": {"endpointType": "EventHub", "properties": {}}}, "'EventHub' is not supported"),
        ({"destination": webhook(endpointUrl="ftp://x/y")}, "not an absolute http or https URL"),
        ({}, "destination is required"),
        ({"destination": webhook(), "expirationTimeUtc": "2020-01-01T00:00:00Z"}, "Invalid expiration time."),
        ({"destination": webhook(), "expirationTimeUtc": "tomorrow"}, "Invalid expiration time."),
        ({"destination": webhook(), "eventDeliverySchema": "CustomInputSchema"}, "is not supported; use one of"),
        ({"destination": webhook(), "labels": "a"}, "labels must be a list of strings"),
        ({"destination": webhook(), "deadLetterDestination": {"endpointType": "LocalDirectory",
                                                             "properties": {"path": "relative/dir"}}}, "absolute"),
        ({"destination": webhook(), "deadLetterDestination": {"endpointType": "StorageBlob", "properties": {}}},
         "resourceId must be a storage account"),
        ({"destination": webhook(), "deliveryWithResourceIdentity": {}}, "no managed identities"),
        ({"destination": webhook(), "filter": {"advancedFilters": [{"operatorType": "NumberWow", "key": "data.a"}]}},
         "NumberWow"),
    ],
)
def test_out_of_range_and_unsupported_values_are_rejected(raw: dict[str, Any], fragment: str) -> None:
    found = problems(raw)
    assert any(fragment in p for p in found), found


def test_every_problem_is_reported_at_once() -> None:
    raw = {"destination": webhook(maxEventsPerBatch=0, preferredBatchSizeInKilobytes=2000),
           "retryPolicy": {"maxDeliveryAttempts": 0, "eventTimeToLiveInMinutes": 5000},
           "expirationTimeUtc": "2001-01-01"}
    assert len(problems(raw)) == 5


def test_delivery_schema_must_be_convertible_from_the_topic_schema() -> None:
    found = problems({"destination": webhook(), "eventDeliverySchema": EG}, CE)
    assert "cannot convert" in found[0]
    assert validate_properties({"destination": webhook(), "eventDeliverySchema": CE}, EG, NOW)


def test_delivery_attribute_mappings() -> None:
    good = [{"name": "X-A", "type": "static", "properties": {"value": "1"}},
            {"name": "X-B", "type": "Dynamic", "properties": {"sourceField": "data.b"}}]
    props = validate_properties({"destination": webhook(deliveryAttributeMappings=good)}, EG, NOW).to_arm()
    assert props["destination"]["properties"]["deliveryAttributeMappings"] == [
        {"name": "X-A", "type": "Static", "properties": {"value": "1", "isSecret": False}},
        {"name": "X-B", "type": "Dynamic", "properties": {"sourceField": "data.b"}}]
    eleven = [{"name": f"X-{i}", "type": "Static", "properties": {"value": "v"}} for i in range(11)]
    assert any("At most 10" in p for p in problems({"destination": webhook(deliveryAttributeMappings=eleven)}))
    bad = [{"name": "aeg-event-type", "type": "Static", "properties": {"value": "x"}},
           {"name": "bad name", "type": "Static", "properties": {"value": "x"}},
           {"name": "X-Big", "type": "Static", "properties": {"value": "x" * 4097}},
           {"name": "X-C", "type": "Computed", "properties": {}},
           {"name": "X-D", "type": "Dynamic", "properties": {}}]
    found = problems({"destination": webhook(deliveryAttributeMappings=bad)})
    assert len(found) == 5, found


def test_expiration_is_normalised_to_utc() -> None:
    props = validate_properties({"destination": webhook(), "expirationTimeUtc": "2099-01-02T03:04:05+02:00"}, EG, NOW)
    assert props.expiration_time_utc == "2099-01-02T01:04:05Z"
    assert validate_properties({"destination": webhook(), "expirationTimeUtc": "2099-01-02"}, EG, NOW
                               ).expiration_time_utc == "2099-01-02T00:00:00Z"


def test_subject_warning_names_the_fix_for_the_seed_docs_filter() -> None:
    templates = [("/phonenumber/{acsNumberDigits}", True)]
    warning = subject_warning("phonenumber/1555", False, templates, "commgrid")
    assert warning is not None
    assert "can never match" in warning and "Did you mean '/phonenumber/1555'?" in warning
    assert subject_warning("/phonenumber/1555", False, templates, "commgrid") is None
    assert subject_warning("/PHONENUMBER/", False, templates, "commgrid") is None
    assert subject_warning("/PHONENUMBER/", True, templates, "commgrid").endswith("Did you mean '/phonenumber/'?")
    assert subject_warning("/orders/", False, [("/orders/1", False)], "t") is None
    assert subject_warning("orders/", False, [("/orders/1", False)], "t").endswith("Did you mean '/orders/'?")
    assert subject_warning("/x", False, [], "t") is None  # nothing known about the subjects: no warning


def test_cli_advanced_filter_syntax() -> None:
    assert parse_advanced_filter("data.key NumberGreaterThan 5") == {
        "operatorType": "NumberGreaterThan", "key": "data.key", "value": 5}
    assert parse_advanced_filter("data.x numberin 1 2.5") == {"operatorType": "NumberIn", "key": "data.x",
                                                              "values": [1, 2.5]}
    assert parse_advanced_filter("data.n NumberInRange 1,5 10,20")["values"] == [[1, 5], [10, 20]]
    assert parse_advanced_filter("data.ok BoolEquals true")["value"] is True
    assert parse_advanced_filter("data.city StringIn Paris 'New York'")["values"] == ["Paris", "New York"]
    assert parse_advanced_filter("subject IsNotNull") == {"operatorType": "IsNotNull", "key": "subject"}
    for bad in ("data.key", "data.key NumberGreaterThan", "data.k NumberGreaterThan x", "d BoolEquals maybe",
                "d NumberInRange 5"):
        with pytest.raises(typer.BadParameter):
            parse_advanced_filter(bad)


def test_cli_attribute_mapping_and_storage_syntax() -> None:
    assert parse_attribute_mapping("Authorization static 'Bearer x' true") == {
        "name": "Authorization", "type": "Static", "properties": {"value": "Bearer x", "isSecret": True}}
    assert parse_attribute_mapping("X-Kind dynamic data.kind") == {
        "name": "X-Kind", "type": "Dynamic", "properties": {"sourceField": "data.kind"}}
    container = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/a"
    assert storage_dead_letter(container + "/blobServices/default/containers/dl") == {
        "endpointType": "StorageBlob", "properties": {"resourceId": container, "blobContainerName": "dl"}}
    with pytest.raises(typer.BadParameter):
        storage_dead_letter(container)


def test_the_typed_model_round_trips_through_its_stored_form() -> None:
    raw = {"destination": webhook(maxEventsPerBatch=10, deliveryAttributeMappings=[
               {"name": "X-S", "type": "Static", "properties": {"value": "v", "isSecret": True}},
               {"name": "X-D", "type": "Dynamic", "properties": {"sourceField": "data.d"}}],
               azureActiveDirectoryTenantId="t"),
           "filter": {"includedEventTypes": ["A"], "subjectBeginsWith": "/a", "enableAdvancedFilteringOnArrays": True,
                      "advancedFilters": [{"operatortype": "numberinrange", "key": "data.n", "values": [[1, 2]]},
                                          {"operatorType": "IsNotNull", "key": "data.x"},
                                          {"operatorType": "BoolEquals", "key": "data.b", "value": False}]},
           "labels": ["l"], "retryPolicy": {"maxDeliveryAttempts": 3},
           "deadLetterDestination": {"endpointType": "LocalDirectory", "properties": {"path": "/tmp/dl"}},
           "expirationTimeUtc": "2099-01-01T00:00:00Z"}
    props = validate_properties(raw, EG, NOW)
    assert SubscriptionProperties.from_arm(props.to_arm()) == props
    arm = props.to_arm()
    assert arm["filter"]["advancedFilters"][0] == {"operatorType": "NumberInRange", "key": "data.n", "values": [[1, 2]]}
    assert arm["filter"]["advancedFilters"][2] == {"operatorType": "BoolEquals", "key": "data.b", "value": False}
    assert arm["destination"]["properties"]["azureActiveDirectoryTenantId"] == "t"
    shown = props.to_arm(reveal=False)["destination"]["properties"]
    assert shown["endpointBaseUrl"] == "https://example.com/hook" and "endpointUrl" not in shown
    assert shown["deliveryAttributeMappings"][0]["properties"] == {"value": None, "isSecret": True}
    assert props.expires_at == 4070908800.0
