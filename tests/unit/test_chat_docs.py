"""Chat documents: keys that list in the API's order, wire timestamps, identifiers, cursors, request fields."""

from __future__ import annotations

import pytest

from commgrid.acs.chat_docs import (
    Participant,
    Thread,
    decode_cursor,
    encode_cursor,
    identifier_raw_id,
    membership_key,
    message_key,
    page_size,
    participants_of,
    skip_of,
    system_message,
    time_param,
    user_message,
)
from commgrid.errors import BadRequest
from commgrid.timestamps import ms_wire_time

USER = "8:acs:109f0644-b956-4cd9-87b1-71024f6e2f44_00000008-578d-7caf-07fd-084822001724"
THREAD = "19:e07c8ddc5bab4c059ea9f11d29b544b6@thread.v2"


def test_keys_list_newest_first_within_their_prefix() -> None:
    ids = [1593106976753, 1593106976785, 1593107077690]
    assert sorted(message_key(THREAD, i) for i in ids) == [message_key(THREAD, i) for i in reversed(ids)]
    assert all(message_key(THREAD, i).startswith(f"{THREAD}/") for i in ids)
    older, newer = membership_key(USER, 1000, "19:b@thread.v2"), membership_key(USER, 2000, "19:a@thread.v2")
    assert sorted([older, newer]) == [newer, older]


def test_wire_times_as_the_service_writes_them() -> None:
    assert ms_wire_time(0) == "1970-01-01T00:00:00Z"
    assert ms_wire_time(1593107077683) == "2020-06-25T17:44:37.6830000Z"
    assert time_param("2020-06-25T17:44:37.683Z", "t") == 1593107077683
    assert time_param("2020-06-25T19:44:37.683+02:00", "t") == 1593107077683
    assert time_param("2020-06-25T17:44:37", "t") == 1593107077000  # no zone: UTC
    with pytest.raises(BadRequest):
        time_param("yesterday", "startTime")


@pytest.mark.parametrize(
    ("model", "raw"),
    [
        ({"rawId": USER, "communicationUser": {"id": USER}}, USER),
        ({"communicationUser": {"id": USER}}, USER),  # other SDKs may omit rawId
        ({"rawId": "4:+14255550123", "phoneNumber": {"value": "+14255550123"}}, "4:+14255550123"),
        ({"phoneNumber": {"value": "+14255550123"}}, "4:+14255550123"),
        ({"rawId": "8:orgid:45ab2481-1c1c-4005-be24-0ffb879b1130"}, "8:orgid:45ab2481-1c1c-4005-be24-0ffb879b1130"),
    ],
)
def test_identifiers(model: dict, raw: str) -> None:
    assert identifier_raw_id(model) == raw


@pytest.mark.parametrize("model", [{"rawId": "8:acs:fakeid==="}, {}, None, {"rawId": 7}, {"rawId": "bob"}])
def test_malformed_identifiers_are_400(model: object) -> None:
    with pytest.raises(BadRequest, match="Identifier format is invalid"):
        identifier_raw_id(model)


def test_participants_of_keeps_the_first_mention_and_parses_share_history_time() -> None:
    item = {"communicationIdentifier": {"rawId": USER}, "displayName": "Bob",
            "shareHistoryTime": "2024-01-01T00:00:00.000Z"}
    (only,) = participants_of([item, {"communicationIdentifier": {"rawId": USER}, "displayName": "Again"}])
    assert (only.raw_id, only.display_name, only.share_history_time) == (USER, "Bob", 1704067200000)
    with pytest.raises(BadRequest):
        participants_of([{"communicationIdentifier": {"rawId": USER}, "displayName": 3}])


def test_cursors_round_trip_and_stay_in_their_list() -> None:
    key = message_key(THREAD, 1593107077690)
    assert decode_cursor(encode_cursor(key), f"{THREAD}/") == key
    assert encode_cursor(key).isalnum()  # survives the SDK's re-quoting of nextLink
    for foreign in (encode_cursor("19:other@thread.v2/1"), "zz", ""):
        with pytest.raises(BadRequest):
            decode_cursor(foreign, f"{THREAD}/")


def test_page_size_and_skip() -> None:
    assert page_size(None, 100, 200) == 100
    assert page_size("500", 100, 200) == 200
    assert skip_of(None) == 0 and skip_of("3") == 3
    for bad in ("0", "-1", "x"):
        with pytest.raises(BadRequest):
            page_size(bad, 100, 200)
    with pytest.raises(BadRequest):
        skip_of("-2")


def test_message_ids_and_sequence_ids_increase_even_within_one_millisecond() -> None:
    thread = Thread(THREAD, "t", 1000, USER, [Participant(USER)], version=1000, updated_on=1000)
    first = system_message(thread, "participantAdded", USER, 1000, participants=[])
    second = user_message(thread, USER, "hi", "text", None, {}, 1000)
    assert (first["id"], first["sequenceId"]) == ("1000", 1)
    assert (second["id"], second["sequenceId"], second["createdOn"]) == ("1001", 2, 1001)
    assert Thread.from_value(thread.to_value()) == thread
