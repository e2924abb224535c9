"""SMS encoding, segment counting, length limits and number formats
(azure-rest-api-specs `specification/communication/data-plane/Sms/stable/2021-03-07`)."""

from __future__ import annotations

import pytest

from commgrid.acs import sms_text
from commgrid.acs.sms_text import SmsEncoding, analyze, segment_count
from commgrid.errors import InvalidInput

CYRILLIC, EMOJI, EURO = "ж", "😀", "€"


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", SmsEncoding.GSM7, 0, 1),
        ("a" * 160, SmsEncoding.GSM7, 160, 1),
        ("a" * 161, SmsEncoding.GSM7, 161, 2),
        ("a" * 306, SmsEncoding.GSM7, 306, 2),
        ("a" * 307, SmsEncoding.GSM7, 307, 3),
        ("a" * 459, SmsEncoding.GSM7, 459, 3),
        ("a" * 460, SmsEncoding.GSM7, 460, 4),
        (EURO * 80, SmsEncoding.GSM7, 160, 1),  # extension characters cost two septets
        (EURO * 81, SmsEncoding.GSM7, 162, 2),
        ("{}[]~^|\\\f", SmsEncoding.GSM7, 18, 1),
        ("é" * 160, SmsEncoding.GSM7, 160, 1),  # é, ñ, Ä... are in the basic table
        ("á" + "a" * 69, SmsEncoding.UCS2, 70, 1),  # á is not: the whole message becomes UCS-2
        ("á" + "a" * 70, SmsEncoding.UCS2, 71, 2),
        (CYRILLIC * 70, SmsEncoding.UCS2, 70, 1),
        (CYRILLIC * 71, SmsEncoding.UCS2, 71, 2),
        (CYRILLIC * 134, SmsEncoding.UCS2, 134, 2),
        (CYRILLIC * 135, SmsEncoding.UCS2, 135, 3),
        (EMOJI * 35, SmsEncoding.UCS2, 70, 1),  # a surrogate pair is two UTF-16 units
        (EMOJI * 36, SmsEncoding.UCS2, 72, 2),
    ],
    ids=lambda v: repr(v)[:12] if isinstance(v, str) else str(v),
)
def test_analyze(text: str, encoding: SmsEncoding, units: int, segments: int) -> None:
    info = analyze(text)
    assert (info.encoding, info.units, info.segments) == (encoding, units, segments)


def test_an_extension_character_is_never_split_across_segments() -> None:
    # 306 septets would fit two 153-septet segments, but the escape pair cannot straddle them.
    assert segment_count("a" * 152 + EURO + "a" * 152) == 3


def test_a_surrogate_pair_is_never_split_across_segments() -> None:
    # 134 units would fit two 67-unit segments, but the emoji cannot straddle them.
    assert segment_count(CYRILLIC * 66 + EMOJI + CYRILLIC * 66) == 3


def test_validate_message_enforces_2048_utf16_units() -> None:
    sms_text.validate_message("a" * 2048)
    sms_text.validate_message(EMOJI * 1024)
    for too_long in ("a" * 2049, EMOJI * 1025):
        with pytest.raises(InvalidInput) as raised:
            sms_text.validate_message(too_long)
        assert raised.value.status == 400
        assert raised.value.code == "ValidationError"
        assert "2048" in raised.value.message


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("+14255550123", True),
        ("+18005550100", True),
        ("+12", True),
        ("+123456789012345", True),  # 15 digits, the E.164 maximum
        ("+1234567890123456", False),
        ("+1", False),
        ("+0123456789", False),
        ("14255550123", False),
        ("+1 425 555 0123", False),
        ("Ad155500000000000", False),  # the malformed `to` of the SDK's recorded test
        ("", False),
    ],
)
def test_is_e164(number: str, valid: bool) -> None:
    assert sms_text.is_e164(number) is valid
    assert (sms_text.recipient_error(number) is None) is valid


def test_recipient_error_is_the_services_message() -> None:
    assert sms_text.recipient_error("12") == "Invalid To phone number format."


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("+18005550100", True),
        ("12345", True),
        ("123456", True),
        ("1234", False),
        ("1234567", False),
        ("+12345", True),
        ("abcde", False),
    ],
)
def test_is_valid_sender_accepts_e164_and_short_codes(number: str, valid: bool) -> None:
    assert sms_text.is_valid_sender(number) is valid


def test_digits_drops_the_plus() -> None:
    assert sms_text.digits("+15555555555") == "15555555555"
    assert sms_text.digits("15555555555") == "15555555555"
