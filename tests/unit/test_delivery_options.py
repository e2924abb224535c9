"""commgrid's subscription options: parsing and validation, signatures, pacing, rotation."""

from __future__ import annotations

import time

import pytest
from standardwebhooks import Webhook

from commgrid.errors import InvalidInput
from commgrid.events.envelope import CLOUDEVENTS, EVENTGRID
from commgrid.grid.options import is_secret, live_secrets, parse_duration, rotate, validate_options
from commgrid.grid.properties import CommgridOptions, SubscriptionProperties, WebHookDestination
from commgrid.grid.ratelimit import Pacer
from commgrid.grid.signing import new_secret, secret_key, signature_headers

NONE = CommgridOptions()


@pytest.mark.parametrize(("text", "seconds"), [("PT10M", 600), ("pt1h30m", 5400), ("P1D", 86400), ("PT0S", 0),
                                               ("PT1.5S", 1.5), ("P1DT1S", 86401)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "P", "PT", "10M", "PT10", "P1DT", "PT-1M"])
def test_not_durations(text: str) -> None:
    assert parse_duration(text) is None


def test_options_are_merged_key_by_key_and_null_removes() -> None:
    first = validate_options({"maxEventsPerSecond": 20, "disableAfterFailingFor": "pt10m", "orderingKey": "subject"},
                             NONE, EVENTGRID, 0.0)
    assert (first.max_events_per_second, first.disable_after_failing_for, first.disable_after_seconds,
            first.ordering_key) == (20.0, "PT10M", 600.0, "subject")
    assert validate_options(None, first, EVENTGRID, 0.0) == first
    second = validate_options({"MaxEventsPerSecond": None}, first, EVENTGRID, 0.0)
    assert second.max_events_per_second is None and second.ordering_key == "subject"


def test_every_problem_is_listed() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_options({"signing": {"secrets": ["whsec_short"]}, "maxEventsPerSecond": True,
                          "disableAfterFailingFor": "PT10S", "orderingKey": "data.", "retention": 1},
                         NONE, EVENTGRID, 0.0)
    messages = [d.message for d in caught.value.details]
    assert len(messages) == 5
    assert [m.split(" ")[0] for m in messages] == ["commgrid.retention", "commgrid.signing.secrets[0]",
                                                   "commgrid.maxEventsPerSecond", "commgrid.disableAfterFailingFor",
                                                   "commgrid.orderingKey"]
    assert caught.value.status == 400


def test_ordering_keys() -> None:
    for key in ("subject", "data.threadId", "data.a.b"):
        assert validate_options({"orderingKey": key}, NONE, EVENTGRID, 0).ordering_key == key
    assert validate_options({"orderingKey": "extension:partitionkey"}, NONE, CLOUDEVENTS, 0).ordering_key
    for bad, schema in (("extension:partitionkey", EVENTGRID), ("extension:Bad-Name", CLOUDEVENTS), ("id", EVENTGRID),
                        (3, EVENTGRID)):
        with pytest.raises(InvalidInput):
            validate_options({"orderingKey": bad}, NONE, schema, 0)


def test_signing_generates_once_keeps_and_removes() -> None:
    on = validate_options({"signing": {"enabled": True}}, NONE, EVENTGRID, 5.0)
    (secret,) = on.signing_secrets
    assert is_secret(secret.secret) and secret.added_at == 5.0
    assert validate_options({"signing": {"enabled": True}}, on, EVENTGRID, 9.0) == on
    assert validate_options({"signing": None}, on, EVENTGRID, 9.0).signing_secrets == ()
    given = new_secret()
    assert validate_options({"signing": {"secrets": [given]}}, on, EVENTGRID, 9.0).signing_secrets[0].secret == given


def test_rotation_overlaps_then_drops_the_old_secret() -> None:
    options = validate_options({"signing": True}, NONE, EVENTGRID, 0.0)
    old = options.signing_secrets[0].secret
    rotated = rotate(options, 100.0, 60.0)
    assert [s.secret for s in live_secrets(rotated, 150.0)][1:] == [old]
    assert [s.secret for s in live_secrets(rotated, 161.0)] == [rotated.signing_secrets[0].secret]
    with pytest.raises(InvalidInput):
        rotate(options, 0.0, 0.0, "whsec_nope")


def test_signatures_verify_with_standardwebhooks_for_each_secret() -> None:
    a, b = new_secret(), new_secret()
    body = b'[{"id":"1"}]'
    headers = signature_headers([secret_key(a), secret_key(b)], "msg_1", int(time.time()), body)
    for secret in (a, b):
        assert Webhook(secret).verify(body, headers) == [{"id": "1"}]


def test_options_survive_the_stored_form_but_not_arm_properties() -> None:
    options = validate_options({"signing": True, "orderingKey": "subject", "maxEventsPerSecond": 3}, NONE,
                               EVENTGRID, 1.0)
    props = SubscriptionProperties(WebHookDestination("https://example.com/h"), commgrid=options)
    assert "commgrid" not in props.to_arm()
    assert SubscriptionProperties.from_arm(props.to_stored()) == props
    shown = options.to_arm()
    assert shown["signing"]["secrets"][0]["secret"].endswith("…")
    assert options.to_arm(reveal_secrets=True)["signing"]["secrets"][0]["secret"] == options.signing_secrets[0].secret


def test_a_pacer_spaces_events_without_bursts() -> None:
    now = [10.0]
    pacer = Pacer(20, clock=lambda: now[0])
    assert [pacer.reserve(1) for _ in range(3)] == pytest.approx([0.0, 0.05, 0.1])
    assert pacer.reserve(10) == pytest.approx(0.15)
    now[0] = 20.0  # idle for long: no saved-up burst beyond the next slot
    assert pacer.reserve(1) == 0.0 and pacer.reserve(1) == pytest.approx(0.05)


def test_ordering_keys_are_read_from_the_event() -> None:
    from commgrid.grid.ordering import key_of

    event = {"subject": "/t/1", "partitionkey": "p1", "data": {"threadId": "t9", "n": {"a": 1}}}
    assert key_of(event, "subject") == "/t/1"
    assert key_of(event, "extension:partitionkey") == "p1"
    assert key_of(event, "data.threadId") == "t9"
    assert key_of(event, "data.n") == '{"a":1}'
    assert key_of(event, "data.missing") is None and key_of(event, "data.threadId.deeper") is None
