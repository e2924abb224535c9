"""Per-resource Communication Services configuration, kept in the store so every node agrees.

- The event profile (`seed` or `current`, `events/acs.py`): `commgrid serve --event-profile NAME` records the
  choice; a node started without the flag uses the recorded one, and `seed` when none was ever recorded.
- Phone numbers given to `commgrid serve --phone-number` are owned from that start on (added if missing).
"""

from __future__ import annotations

from collections.abc import Iterable

from commgrid.acs.phone_numbers import PhoneNumbers
from commgrid.events.profiles import DEFAULT_PROFILE, profile_by_name
from commgrid.store import Store

EVENT_PROFILE_SETTING = "acs.event_profile"


async def resolve_event_profile(store: Store, requested: str | None) -> str:
    """The profile this node uses: `requested` (recorded for the resource), else the recorded one."""
    if requested:
        name = profile_by_name(requested).name  # ValueError naming the choices
        await store.set_setting(EVENT_PROFILE_SETTING, name)
        return name
    return await store.get_setting(EVENT_PROFILE_SETTING) or DEFAULT_PROFILE.name


async def own_configured_numbers(store: Store, numbers: Iterable[str], now: str) -> None:
    """Make sure every configured number is owned; numbers already owned are left as they are."""
    phone_numbers = PhoneNumbers(store)
    for number in numbers:
        await phone_numbers.add(number, now, exist_ok=True)
