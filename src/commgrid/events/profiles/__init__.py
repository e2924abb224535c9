"""The events ACS publishes to Event Grid, as one of two profiles that render the same domain facts
(`events/acs.py`) in the shapes of different times:

- `SEED` reproduces the 2020 documentation samples field for field (`events/profiles/seed.py`);
- `CURRENT` reproduces today's payloads (`events/profiles/current.py`).

Both are peers over `AcsEventProfile` (`events/profiles/base.py`). Per-event builders
(`profile.chat_message_received(...)`) build one event; the action methods (`profile.message_sent(...)`, ...)
apply who gets which event and return every event of one API action. `profile_by_name` picks one by its
configured name.
"""

from __future__ import annotations

from collections.abc import Mapping

from commgrid.events.profiles.base import AcsEventProfile
from commgrid.events.profiles.current import CurrentProfile
from commgrid.events.profiles.seed import SeedProfile

CURRENT = CurrentProfile()
SEED = SeedProfile()
PROFILES: Mapping[str, AcsEventProfile] = {p.name: p for p in (SEED, CURRENT)}
DEFAULT_PROFILE = SEED


def profile_by_name(name: str) -> AcsEventProfile:
    """`seed` or `current` (case-insensitive); ValueError naming the choices otherwise."""
    try:
        return PROFILES[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown ACS event profile {name!r}; choose one of {', '.join(PROFILES)}") from None
