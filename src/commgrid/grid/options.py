"""Client input → `CommgridOptions`: the `commgrid` member beside ARM's `properties` of an event subscription.

commgrid keeps Azure's behaviour unless a subscription opts in. The member is merged into the current options
key by key: a key that is absent keeps its value (so an Azure tool that drops unknown members never clears
them), a key set to `null` removes that option. Every problem is listed in one `InvalidInput`.

    "commgrid": {
      "signing": {"enabled": true} | {"secrets": ["whsec_…"]} | null,
      "maxEventsPerSecond": 50,
      "disableAfterFailingFor": "PT10M",
      "orderingKey": "subject" | "data.threadId" | "extension:partitionkey"
    }
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import replace
from typing import Any

from commgrid.errors import InvalidInput, Problems
from commgrid.events.envelope import CLOUDEVENTS
from commgrid.grid.properties import CommgridOptions, SigningSecret
from commgrid.grid.signing import new_secret
from commgrid.jsonfields import fields

MAX_EVENTS_PER_SECOND = 100_000.0
MIN_DISABLE_AFTER = 60.0  # Azure seconds (divided by the time scale like the retry ladder)
MAX_DISABLE_AFTER = 30 * 86400.0
MAX_SECRETS = 5
KNOWN = {"signing", "maxeventspersecond", "disableafterfailingfor", "orderingkey"}

_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$", re.IGNORECASE)
_EXTENSION = re.compile(r"^[a-z0-9]{1,20}$")  # a CloudEvents attribute name


def parse_duration(text: str) -> float | None:
    """Seconds in an ISO 8601 duration such as `PT10M`, `PT1H30M` or `P1D`; None if it is not one."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if match is None or text.upper().rstrip("T") in ("P", "PT") or text.upper().endswith("T"):
        return None
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + seconds


def is_secret(value: Any) -> bool:
    """A Standard Webhooks secret: `whsec_` and the base64 of 24 to 64 random bytes."""
    if not isinstance(value, str) or not value.startswith("whsec_"):
        return False
    try:
        key = base64.b64decode(value[6:], validate=True)
    except (binascii.Error, ValueError):
        return False
    return 24 <= len(key) <= 64


def _signing(value: Any, old: tuple[SigningSecret, ...], now: float, problems: Problems) -> tuple[SigningSecret, ...]:
    if value is None or value is False:
        return ()
    if value is True:
        value = {"enabled": True}
    f = fields(value)
    if not isinstance(value, dict) or not f:
        problems.add('commgrid.signing must be {"enabled": true}, {"secrets": ["whsec_…"]} or null.')
        return old
    secrets = f.get("secrets")
    if secrets is not None:
        if not isinstance(secrets, list) or not 1 <= len(secrets) <= MAX_SECRETS:
            problems.add(f"commgrid.signing.secrets must be a list of 1 to {MAX_SECRETS} secrets.")
            return old
        bad = [i for i, s in enumerate(secrets) if not is_secret(s)]
        if bad:
            problems.add(f"commgrid.signing.secrets[{bad[0]}] is not a Standard Webhooks secret: 'whsec_' followed"
                         " by the base64 of 24 to 64 random bytes (leave secrets out to have one generated).")
            return old
        kept = {s.secret: s for s in old}
        return tuple(kept.get(s) or SigningSecret(s, now) for s in secrets)
    enabled = f.get("enabled")
    if not isinstance(enabled, bool):
        problems.add(f"commgrid.signing.enabled must be true or false; got {enabled!r}.")
        return old
    if not enabled:
        return ()
    return old or (SigningSecret(new_secret(), now),)


def _rate(value: Any, problems: Problems) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_EVENTS_PER_SECOND:
        problems.add(f"commgrid.maxEventsPerSecond must be a number above 0 and at most {MAX_EVENTS_PER_SECOND:g};"
                     f" got {value!r}.")
        return None
    return float(value)


def _disable_after(value: Any, problems: Problems) -> tuple[str | None, float | None]:
    if value is None:
        return None, None
    seconds = parse_duration(value) if isinstance(value, str) else None
    if seconds is None or not MIN_DISABLE_AFTER <= seconds <= MAX_DISABLE_AFTER:
        problems.add("commgrid.disableAfterFailingFor must be an ISO 8601 duration from PT1M to P30D, such as"
                     f" 'PT10M'; got {value!r}.")
        return None, None
    return value.upper(), seconds


def _ordering_key(value: Any, input_schema: str, problems: Problems) -> str | None:
    if value is None:
        return None
    ok = isinstance(value, str) and (
        value == "subject"
        or (value.startswith("data.") and "" not in value[5:].split("."))
        or (value.startswith("extension:") and bool(_EXTENSION.match(value[10:]))))
    if not ok:
        problems.add("commgrid.orderingKey must be 'subject', a data property path such as 'data.threadId', or"
                     f" 'extension:<name>' (a CloudEvents extension attribute); got {value!r}.")
        return None
    if value.startswith("extension:") and input_schema != CLOUDEVENTS:
        problems.add(f"commgrid.orderingKey '{value}' names a CloudEvents extension, but the topic's events are"
                     f" in {input_schema}; use 'subject' or 'data.<path>'.")
        return None
    return value


def validate_options(raw: Any, old: CommgridOptions, input_schema: str, now: float) -> CommgridOptions:
    """`old` with the options given in `raw` (the `commgrid` member) changed; `InvalidInput` lists every problem."""
    if raw is None:
        return old
    if not isinstance(raw, dict):
        raise InvalidInput("The commgrid member must be a JSON object (see the README's commgrid options).")
    problems = Problems()
    f = fields(raw)
    for key in raw:
        if key.lower() not in KNOWN:
            problems.add(f"commgrid.{key} is not a commgrid option; the options are signing, maxEventsPerSecond,"
                         " disableAfterFailingFor and orderingKey.")
    options = old
    if "signing" in f:
        options = replace(options, signing_secrets=_signing(f["signing"], old.signing_secrets, now, problems))
    if "maxeventspersecond" in f:
        options = replace(options, max_events_per_second=_rate(f["maxeventspersecond"], problems))
    if "disableafterfailingfor" in f:
        text, seconds = _disable_after(f["disableafterfailingfor"], problems)
        options = replace(options, disable_after_failing_for=text, disable_after_seconds=seconds)
    if "orderingkey" in f:
        options = replace(options, ordering_key=_ordering_key(f["orderingkey"], input_schema, problems))
    problems.raise_if_any("commgrid options")
    return options


def rotate(options: CommgridOptions, now: float, overlap: float, secret: str | None = None) -> CommgridOptions:
    """A new signing secret first; the current ones keep signing for `overlap` seconds, then are dropped."""
    if secret is not None and not is_secret(secret):
        raise InvalidInput("The secret is not a Standard Webhooks secret: 'whsec_' followed by the base64 of 24 to"
                           " 64 random bytes.")
    current = tuple(s if s.expires_at is not None and s.expires_at <= now + overlap
                    else SigningSecret(s.secret, s.added_at, now + overlap) for s in live_secrets(options, now))
    fresh = SigningSecret(secret or new_secret(), now)
    return replace(options, signing_secrets=(fresh, *current)[:MAX_SECRETS])


def live_secrets(options: CommgridOptions, now: float) -> tuple[SigningSecret, ...]:
    """The secrets that still sign at `now` (the newest always does)."""
    secrets = options.signing_secrets
    return tuple(s for i, s in enumerate(secrets) if i == 0 or s.expires_at is None or s.expires_at > now)
