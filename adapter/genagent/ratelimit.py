"""Client-side limiter: at most N requests started in any one-second window.

ASAPP documents a spike limit of about 100 requests/s. Rather than collect 429s
when a burst of callers arrives together, each request reserves a start slot here;
a request whose slot would fall after its deadline is refused at once instead.
The window logic is pure; the sync and async front-ends only sleep.

A deployment of several processes passes a ``SharedWindow`` (one window for all of them,
e.g. kept in Redis) so the limit holds for the whole deployment, not per process. A
caller that reserved its start together with other work (the call's record and its
slot in one Redis round trip) hands the ``StartSlot`` to ``acquire``, which then only
waits for it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from adapter.genagent.errors import ApiTimeoutError
from adapter.genagent.retry import Clock, Deadline


class SlidingWindow:
    """Start times of the last ``limit`` requests; not thread-safe by itself."""

    __slots__ = ("_starts", "limit", "window")

    def __init__(self, limit: int, window: float = 1.0) -> None:
        if limit < 1:
            raise ValueError("the rate limit must be at least 1 request per window")
        self.limit = limit
        self.window = window
        self._starts: deque[float] = deque(maxlen=limit)

    def reserve(self, now: float, latest: float) -> float | None:
        """Reserve the earliest start at or after ``now``; None if it would be after ``latest``."""
        start = now
        if len(self._starts) == self.limit:
            start = max(now, self._starts[0] + self.window)
        if start > latest:
            return None
        self._starts.append(start)
        return start


# A slot is for a request leaving when it says, give or take the jitter the shared
# window's margin allows for; one used later would start where no slot was reserved.
SLOT_LATENESS = 0.1


@dataclass(frozen=True, slots=True)
class StartSlot:
    """A start reserved ahead of its request: at ``start`` on the monotonic clock, or
    None if the window had no slot in time (the request is then refused)."""

    start: float | None

    @classmethod
    def after(cls, delay: float | None, clock: Clock = time.monotonic) -> StartSlot:
        """The slot ``delay`` seconds from now (None: refused)."""
        return cls(None if delay is None else clock() + delay)

    def usable(self, now: float) -> bool:
        """False once the slot is too far past to start at (reserve another instead)."""
        return self.start is None or self.start >= now - SLOT_LATENESS

    def delay(self, now: float, deadline: Deadline) -> float | None:
        """The wait for the slot; None if it was refused or comes after the deadline."""
        if self.start is None or self.start > now + deadline.remaining():
            return None
        return max(0.0, self.start - now)


class SharedWindow(Protocol):
    """A start window shared by several processes; thread-safe, may block briefly."""

    def reserve_delay(self, within: float) -> float | None:
        """Reserve the earliest start slot; the seconds to wait for it, or None if it is
        more than ``within`` seconds away."""


class RateLimiter:
    """Thread-safe limiter for the synchronous client."""

    def __init__(
        self,
        per_second: int,
        clock: Clock = time.monotonic,
        shared: SharedWindow | None = None,
    ) -> None:
        self._window = SlidingWindow(per_second)
        self._lock = threading.Lock()
        self._clock = clock
        self._shared = shared

    def acquire(self, deadline: Deadline, slot: StartSlot | None = None) -> None:
        """Wait for a start slot (``slot``, if reserved ahead and still usable);
        ApiTimeoutError if none is free before the deadline."""
        now = self._clock()
        if slot is not None and slot.usable(now):
            delay = slot.delay(now, deadline)
        elif self._shared is not None:
            delay = self._shared.reserve_delay(deadline.remaining())
        else:
            with self._lock:
                delay = _local_delay(self._window, self._clock(), deadline)
        if delay is None:
            raise ApiTimeoutError("deadline reached while waiting for the client rate limit")
        if delay > 0:
            time.sleep(delay)


class AsyncRateLimiter:
    """Limiter for the asyncio client (one event loop; no lock needed)."""

    def __init__(
        self,
        per_second: int,
        clock: Clock = time.monotonic,
        shared: SharedWindow | None = None,
    ) -> None:
        self._window = SlidingWindow(per_second)
        self._clock = clock
        self._shared = shared

    async def acquire(self, deadline: Deadline, slot: StartSlot | None = None) -> None:
        """Wait for a start slot (``slot``, if reserved ahead and still usable);
        ApiTimeoutError if none is free before the deadline."""
        now = self._clock()
        if slot is not None and slot.usable(now):
            delay = slot.delay(now, deadline)
        elif self._shared is not None:
            # A network round trip: off the event loop, which other calls share.
            delay = await asyncio.to_thread(self._shared.reserve_delay, deadline.remaining())
        else:
            delay = _local_delay(self._window, now, deadline)
        if delay is None:
            raise ApiTimeoutError("deadline reached while waiting for the client rate limit")
        if delay > 0:
            await asyncio.sleep(delay)


def _local_delay(window: SlidingWindow, now: float, deadline: Deadline) -> float | None:
    start = window.reserve(now, now + deadline.remaining())
    return None if start is None else start - now
