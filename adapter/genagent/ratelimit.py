"""Client-side limiter: at most N requests started in any one-second window.

ASAPP documents a spike limit of about 100 requests/s. Rather than collect 429s
when a burst of callers arrives together, each request reserves a start slot here;
a request whose slot would fall after its deadline is refused at once instead.
The window logic is pure; the sync and async front-ends only sleep.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque

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


class RateLimiter:
    """Thread-safe limiter for the synchronous client."""

    def __init__(self, per_second: int, clock: Clock = time.monotonic) -> None:
        self._window = SlidingWindow(per_second)
        self._lock = threading.Lock()
        self._clock = clock

    def acquire(self, deadline: Deadline) -> None:
        """Wait for a start slot; ApiTimeoutError if none is free before the deadline."""
        with self._lock:
            now = self._clock()
            start = self._window.reserve(now, now + deadline.remaining())
        if start is None:
            raise ApiTimeoutError("deadline reached while waiting for the client rate limit")
        if start > now:
            time.sleep(start - now)


class AsyncRateLimiter:
    """Limiter for the asyncio client (one event loop; no lock needed)."""

    def __init__(self, per_second: int, clock: Clock = time.monotonic) -> None:
        self._window = SlidingWindow(per_second)
        self._clock = clock

    async def acquire(self, deadline: Deadline) -> None:
        """Wait for a start slot; ApiTimeoutError if none is free before the deadline."""
        now = self._clock()
        start = self._window.reserve(now, now + deadline.remaining())
        if start is None:
            raise ApiTimeoutError("deadline reached while waiting for the client rate limit")
        if start > now:
            await asyncio.sleep(start - now)
