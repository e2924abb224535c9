"""Envelope validation and schema conversion (https://learn.microsoft.com/azure/event-grid/event-schema)."""

from __future__ import annotations

import pytest
from azure.eventgrid import EventGridEvent
from cloudevents.http import from_dict

from commgrid.errors import InvalidInput, PayloadTooLarge
from commgrid.events.envelope import (
    CLOUDEVENTS,
    EVENTGRID,
    can_convert,
    convert,
    encode_event,
    parse_json_array,
    validate_events,
)

ARM = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.EventGrid/topics/t"


def eg(**kw) -> dict:
    event = {"id": "1", "subject": "/a", "eventType": "T", "eventTime": "2024-01-01T00:00:00.1234567Z",
             "data": {"x": 1}, "dataVersion": "2.0"}
    event.update(kw)
    return event


def test_eventgrid_defaults_are_stamped() -> None:
    events = [eg(dataVersion=None)]
    del events[0]["dataVersion"]
    (stamped,) = validate_events(events, EVENTGRID, ARM)
    assert stamped["topic"] == ARM and stamped["metadataVersion"] == "1" and stamped["dataVersion"] == ""
    assert "dataVersion" not in events[0]  # the input is left as published
    EventGridEvent.from_dict(stamped)  # the SDK reads what commgrid stores


def test_empty_subject_is_allowed_but_missing_is_not() -> None:
    validate_events([eg(subject="")], EVENTGRID, ARM)
    event = eg()
    del event["subject"]
    with pytest.raises(InvalidInput, match="Subject"):
        validate_events([event], EVENTGRID, ARM)


def test_all_problems_are_collected() -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_events([eg(id=""), eg(eventTime="x"), eg(metadataVersion="9")], EVENTGRID, ARM)
    assert len(raised.value.details) == 3
    assert "(event 1)" in raised.value.details[1].message


def test_cloudevent_rules() -> None:
    ok = {"id": "1", "source": "/s", "type": "T", "specversion": "1.0", "time": "2024-01-01T00:00:00Z"}
    validate_events([dict(ok)], CLOUDEVENTS, ARM)
    for broken in ({**ok, "specversion": "0.3"}, {**ok, "time": "noon"}, {**ok, "data": 1, "data_base64": "AA=="},
                   {k: v for k, v in ok.items() if k != "source"}):
        with pytest.raises(InvalidInput):
            validate_events([broken], CLOUDEVENTS, ARM)


def test_schema_mismatch_is_reported_once() -> None:
    with pytest.raises(InvalidInput) as raised:
        validate_events([eg()], CLOUDEVENTS, ARM)
    assert raised.value.details[0].code == "InputSchemaMismatch"


def test_structured_cloudevent_body_is_accepted() -> None:
    assert parse_json_array(b'{"id":"1"}', "application/cloudevents+json; charset=utf-8") == [{"id": "1"}]
    with pytest.raises(InvalidInput):
        parse_json_array(b'{"id":"1"}', "application/json")


def test_64_bit_integers_are_stored_digit_for_digit() -> None:
    """A body of integers only skips the exact re-read; the extremes orjson reads exactly still come out as sent."""
    data = b'{"max":18446744073709551615,"min":-9223372036854775808,"nested":[[0,-1,{"n":12345678901234567}]]}'
    body = b'[{"id":"1","subject":"/a","eventType":"T","eventTime":"2024-01-01T00:00:00Z","data":' + data + b"}]"
    events = parse_json_array(body, "application/json")
    (stored,) = validate_events(events, EVENTGRID, ARM)
    assert b'"data":' + data in encode_event(stored, 0, events[0])


@pytest.mark.parametrize("number", ["18446744073709551616", "-9223372036854775809", "1" + "0" * 40,
                                    "1.00000000000000000001", "3.14159265358979323846", "1E-400"])
def test_numbers_a_64_bit_value_cannot_hold_are_refused_among_integers(number: str) -> None:
    body = b'[{"id":"1","data":{"a":1,"b":[2,3],"n":' + number.encode() + b',"z":4}}]'
    with pytest.raises(InvalidInput, match="cannot be stored exactly"):
        parse_json_array(body, "application/json")


def test_valid_and_invalid_events_are_stamped_and_reported_as_before() -> None:
    """The one-pass check of plain Event Grid events agrees with the full one: stamps as it, and leaves every
    problem (an event time that is not a time, a foreign topic, a CloudEvent) to it."""
    (stamped,) = validate_events([eg(topic=ARM.upper(), extra=1)], EVENTGRID, ARM)
    assert list(stamped) == ["id", "subject", "eventType", "eventTime", "data", "dataVersion", "topic", "extra",
                             "metadataVersion"]
    assert stamped["topic"] == ARM and stamped["dataVersion"] == "2.0"
    for broken, wording in ((eg(eventTime="2024-13-01T00:00:00Z"), "EventTime"), (eg(topic="/other"), "Topic"),
                            (eg(metadataVersion=1), "MetadataVersion"), (eg(eventType=""), "EventType"),
                            (eg(id=7), "Id"), (eg(specversion="1.0"), "Event Grid schema")):
        with pytest.raises(InvalidInput, match=wording):
            validate_events([eg(), broken], EVENTGRID, ARM)


def test_event_size_limit() -> None:
    with pytest.raises(PayloadTooLarge):
        encode_event(eg(data="x" * (1024 * 1024)), 0)


def test_eventgrid_to_cloudevent_mapping_reads_back_with_the_cloudevents_sdk() -> None:
    (event,) = validate_events([eg()], EVENTGRID, ARM)
    ce = convert(event, EVENTGRID, CLOUDEVENTS)
    assert ce == {"id": "1", "source": ARM, "type": "T", "specversion": "1.0", "subject": "/a",
                  "time": "2024-01-01T00:00:00.1234567Z", "dataversion": "2.0",
                  "datacontenttype": "application/json", "data": {"x": 1}}
    parsed = from_dict(ce)
    assert parsed["source"] == ARM and parsed.data == {"x": 1}


def test_only_event_grid_conversions_exist() -> None:
    assert can_convert(EVENTGRID, CLOUDEVENTS) and can_convert(CLOUDEVENTS, CLOUDEVENTS)
    assert not can_convert(CLOUDEVENTS, EVENTGRID)
