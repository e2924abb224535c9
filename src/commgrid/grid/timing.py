"""Every delivery duration in one place, compressed by `Settings.time_scale`.

`time_scale` (`commgrid serve --time-scale N`, `COMMGRID_TIME_SCALE`) divides Azure's durations so tests and
demos run the real schedule quickly: with 600, the 10 s first retry takes 17 ms, a 1440-minute TTL 2.4 minutes
and the 10-minute manual validation window 1 s. Scaled are the retry ladder and status minimums, probation,
event TTL, the validation window and the handshake retry. The 30 s response timeout is scaled too but never
below `MIN_RESPONSE_TIMEOUT`, so a loaded but healthy endpoint is not mistaken for a dead one; the lease on
claimed deliveries is not scaled: it is renewed while a worker holds them. Absolute times
(`expirationTimeUtc`) are never scaled.
"""

from __future__ import annotations

from dataclasses import dataclass

from commgrid.grid.retry import RESPONSE_TIMEOUT

MIN_RESPONSE_TIMEOUT = 1.0
MIN_LEASE = 1.5
VALIDATION_WINDOW = 600.0  # 10 minutes for the manual GET (end-point-validation article)
# A validation request without an answer is "reattempted after 5 seconds" (the same article).
HANDSHAKE_RETRY = 5.0
DEFAULT_LEASE = 6.0  # renewed while held: how long a killed node's deliveries wait for another node


@dataclass(frozen=True, slots=True)
class Timing:
    """Azure's durations divided by `scale`, in seconds."""

    scale: float = 1.0
    lease_setting: float = DEFAULT_LEASE

    def __post_init__(self) -> None:
        if self.scale <= 0:
            raise ValueError(f"time scale must be positive, got {self.scale}")

    def scaled(self, seconds: float) -> float:
        return seconds / self.scale

    @property
    def response_timeout(self) -> float:
        return max(RESPONSE_TIMEOUT / self.scale, MIN_RESPONSE_TIMEOUT)

    @property
    def validation_window(self) -> float:
        return VALIDATION_WINDOW / self.scale

    @property
    def validation_window_words(self) -> str:
        """How long the manual validation window is, for messages: Azure's words, and the scaled time."""
        if self.scale == 1:
            return "10 minutes"
        return f"10 minutes, divided by the time scale {self.scale:g}: {self.validation_window:.3g} s"

    @property
    def handshake_retry(self) -> float:
        return HANDSHAKE_RETRY / self.scale

    @property
    def lease(self) -> float:
        """How long claimed deliveries stay leased unless renewed (not scaled: it is commgrid's, not Azure's)."""
        return max(self.lease_setting, MIN_LEASE)
