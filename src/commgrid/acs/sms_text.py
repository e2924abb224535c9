"""SMS text rules: encoding, segment counting, length limits and phone-number formats.

Sources: the SMS REST API, azure-rest-api-specs `specification/communication/data-plane/Sms/stable/2021-03-07`.
140 bytes per segment give 160 GSM-7 characters or 70 UCS-2 code units; concatenated messages lose a 6-byte
header per segment, leaving 153 / 67 (general SMS practice, not stated by ACS). Any character outside GSM-7
switches the whole message to UCS-2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from commgrid.errors import Detail, InvalidInput

# GSM 03.38 default alphabet (ESC, 0x1B, is the gateway to the extension table, not a character).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ\u00a7¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table: each costs ESC + the character, two septets.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
_GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION

SEGMENT_LIMITS = {"GSM7": (160, 153), "UCS2": (70, 67)}
# `message` maxLength in Sms/stable/2021-03-07 (SMS spec). Counted in UTF-16 code units, as the .NET service does.
MAX_MESSAGE_LENGTH = 2048

_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_SHORT_CODE = re.compile(r"^\d{5,6}$")


class SmsEncoding(StrEnum):
    GSM7 = "GSM7"
    UCS2 = "UCS2"


@dataclass(frozen=True, slots=True)
class SmsTextInfo:
    """How a message travels: its encoding, its size in units (septets or UTF-16 units) and its segments."""

    encoding: SmsEncoding
    units: int
    segments: int


def encoding_of(text: str) -> SmsEncoding:
    """GSM-7 when every character is in the basic or extension table, else UCS-2."""
    return SmsEncoding.GSM7 if all(ch in _GSM7_ALL for ch in text) else SmsEncoding.UCS2


def _unit_sizes(text: str, encoding: SmsEncoding) -> list[int]:
    """Size of each character in the encoding's units; a character never straddles two segments."""
    if encoding is SmsEncoding.GSM7:
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    # Astral characters are surrogate pairs in UTF-16: two units, kept together.
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def _pack(sizes: list[int], per_segment: int) -> int:
    """Greedy packing of indivisible characters into segments of `per_segment` units."""
    segments, used = 1, 0
    for size in sizes:
        if used + size > per_segment:
            segments, used = segments + 1, 0
        used += size
    return segments


def analyze(text: str) -> SmsTextInfo:
    """Encoding, unit count and segment count of `text`; an empty message still takes one segment."""
    encoding = encoding_of(text)
    sizes = _unit_sizes(text, encoding)
    single, multi = SEGMENT_LIMITS[encoding]
    units = sum(sizes)
    segments = 1 if units <= single else _pack(sizes, multi)
    return SmsTextInfo(encoding, units, segments)


def segment_count(text: str) -> int:
    """Number of SMS segments `text` is sent as."""
    return analyze(text).segments


def utf16_length(text: str) -> int:
    """Length as .NET's `string.Length` counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def validate_message(text: str) -> None:
    """Raise `InvalidInput` when `text` exceeds the API's 2048-character limit (SMS spec)."""
    if utf16_length(text) > MAX_MESSAGE_LENGTH:
        message = f"The field Message must be a string with a maximum length of {MAX_MESSAGE_LENGTH}."
        raise InvalidInput(message, code="ValidationError", details=[Detail("ValidationError", message)])


def is_e164(number: str) -> bool:
    """`+` then 2 to 15 digits, the first not 0 (the docs give no stricter rule)."""
    return bool(_E164.match(number))


def is_short_code(number: str) -> bool:
    """A 5-6 digit short code, written without `+` (SMS FAQ)."""
    return bool(_SHORT_CODE.match(number))


def is_valid_sender(number: str) -> bool:
    """`from` may be an E.164 number or a short code."""
    return is_e164(number) or is_short_code(number)


def recipient_error(number: str) -> str | None:
    """The per-recipient error the service returns (with httpStatusCode 400) for a malformed `to`, or None."""
    return None if is_e164(number) else "Invalid To phone number format."


def digits(number: str) -> str:
    """The number without its leading `+`, as event subjects write it (`/phonenumber/15555555555`, wire-facts)."""
    return number.removeprefix("+")
