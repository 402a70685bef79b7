"""GA_API_MAX_RPS for a whole deployment: one sliding window of request starts in Redis.

Every process reserves its start slots in one sorted set, ``<prefix>ga-api-starts``,
holding the last N reserved starts on Redis's own clock (so the processes' clocks do not
matter). A Lua script trims the set and reserves the earliest slot at least one window
after the N-th last start, as ``adapter/genagent/ratelimit.py`` does in memory: never
more than N starts in any window, not a token bucket that lets a burst through.

When Redis cannot be reached, each process falls back to its own in-memory window of N
per second (one warning per outage): the deployment may then start up to N times the
number of processes per second, which ASAPP answers with 429s that the client retries.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import redis

from adapter.genagent.ratelimit import SlidingWindow
from adapter.store.base import CallStore
from adapter.store.redis import RedisCallStore

log = logging.getLogger("adapter.store.shared_limit")

# KEYS: the window. ARGV: limit, window (µs), latest acceptable delay (µs), member.
# Returns the delay in µs before the reserved start, or -1 if it would be too late.
_RESERVE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local count = redis.call('ZCARD', KEYS[1])
if count > limit then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, count - limit - 1)
  count = limit
end
local start = now
if count == limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  start = math.max(now, tonumber(oldest[2]) + window)
end
if start > now + tonumber(ARGV[3]) then return -1 end
redis.call('ZADD', KEYS[1], start, ARGV[4])
if count == limit then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, 0) end
redis.call('PEXPIRE', KEYS[1], math.floor((start - now + window) / 1000) + 1000)
return start - now
"""

# Between a slot's reservation and the request leaving lie a Redis answer, a wake-up and
# a thread switch, up to tens of milliseconds on a busy machine; a window 10% longer keeps
# that jitter inside the limit (at most N starts per 1.1 s, so ~91/s for N = 100).
SAFETY_MARGIN = 0.1


class RedisRateWindow:
    """A SharedWindow in Redis, falling back to a per-process window when Redis is out."""

    def __init__(self, client: redis.Redis, key: str, per_second: int) -> None:
        self.key = key
        self.per_second = per_second
        self._window_us = int((1.0 + SAFETY_MARGIN) * 1_000_000)
        self._reserve = client.register_script(_RESERVE)
        self._fallback = SlidingWindow(per_second, 1.0 + SAFETY_MARGIN)
        self._lock = threading.Lock()
        self._outage = False

    def reserve_delay(self, within: float) -> float | None:
        """Seconds to wait for the reserved start, or None if it is over ``within`` away."""
        try:
            delay_us = int(
                self._reserve(
                    keys=[self.key],
                    args=[self.per_second, self._window_us, int(within * 1e6), uuid.uuid4().hex],
                )
            )
        except redis.RedisError as exc:
            return self._reserve_locally(within, exc)
        if self._outage:
            self._outage = False
            log.info("GenerativeAgent rate limit: Redis is back, the limit is shared again")
        return None if delay_us < 0 else delay_us / 1e6

    def _reserve_locally(self, within: float, exc: redis.RedisError) -> float | None:
        if not self._outage:
            self._outage = True
            log.warning(
                "GenerativeAgent rate limit: Redis unreachable (%s); each process now"
                " limits itself to %d requests/s",
                type(exc).__name__,
                self.per_second,
            )
        with self._lock:
            now = time.monotonic()
            start = self._fallback.reserve(now, now + within)
        return None if start is None else start - now


def shared_limit_for(store: CallStore, per_second: int) -> RedisRateWindow | None:
    """The deployment-wide window when the store is Redis; None (per-process) otherwise."""
    if isinstance(store, RedisCallStore):
        return RedisRateWindow(store.client, f"{store.prefix}ga-api-starts", per_second)
    return None
