"""Deadlines and the retry policy, free of I/O so the sync and async clients share them.

ASAPP's published guidance: on 429 back off about 1 s, 2 s, 4 s (or as Retry-After
says); on 5xx and connection failures about 250 ms, 500 ms, 1 s; never retry any
other 4xx. Every wait is jittered and cut short by the caller's deadline: a live
caller is on the line, so giving up in time beats one more try.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from adapter.genagent.errors import (
    ApiConnectionError,
    ApiTimeoutError,
    GenAgentError,
    RateLimitedError,
    ServerError,
)

Clock = Callable[[], float]


class Deadline:
    """A point in time (on a monotonic clock) by which an operation must finish."""

    __slots__ = ("_clock", "at")

    def __init__(self, at: float, clock: Clock = time.monotonic) -> None:
        self.at = at
        self._clock = clock

    @classmethod
    def after(cls, seconds: float, clock: Clock = time.monotonic) -> Deadline:
        """The deadline ``seconds`` from now (zero or less: already expired)."""
        return cls(clock() + seconds, clock)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.at - self._clock())

    @property
    def expired(self) -> bool:
        """True once no time is left."""
        return self.remaining() <= 0.0


def as_deadline(value: Deadline | float | None, default_seconds: float) -> Deadline:
    """Accept a Deadline, a budget in seconds, or None for the configured default."""
    if isinstance(value, Deadline):
        return value
    return Deadline.after(default_seconds if value is None else value)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff schedules (seconds before retry 1, 2, 3, ...) and jitter."""

    rate_limited: tuple[float, ...] = (1.0, 2.0, 4.0)
    server_error: tuple[float, ...] = (0.25, 0.5, 1.0)
    jitter: float = 0.2
    # Shortest time worth starting an attempt with: less than this and it cannot succeed.
    min_attempt_seconds: float = 0.05

    def delay_before_retry(
        self,
        error: GenAgentError,
        retry_number: int,
        rng: Callable[[], float] = random.random,
    ) -> float | None:
        """Seconds to wait before retry ``retry_number`` (1-based), or None: do not retry."""
        if isinstance(error, RateLimitedError):
            schedule = self.rate_limited
        elif isinstance(error, ServerError | ApiConnectionError | ApiTimeoutError):
            schedule = self.server_error
        else:
            return None
        if retry_number > len(schedule):
            return None
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            return error.retry_after
        base = schedule[retry_number - 1]
        return base * (1.0 + self.jitter * (2.0 * rng() - 1.0))

    def next_wait(
        self,
        error: GenAgentError,
        retry_number: int,
        deadline: Deadline,
        rng: Callable[[], float] = random.random,
    ) -> float | None:
        """The wait before the next attempt, or None when the error should be raised now."""
        delay = self.delay_before_retry(error, retry_number, rng)
        if delay is None:
            return None
        if delay + self.min_attempt_seconds >= deadline.remaining():
            return None
        return delay


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())
