"""GA_API_MAX_RPS for a whole deployment: one sliding window of request starts in Redis.

Every process reserves its start slots in one sorted set, ``<prefix>ga-api-starts``,
holding the last N reserved starts on Redis's own clock (so the processes' clocks do not
matter). A Lua script trims the set and reserves the earliest slot at least one window
after the N-th last start, as ``adapter/genagent/ratelimit.py`` does in memory: never
more than N starts in any window, not a token bucket that lets a burst through.

When Redis cannot be reached, each process falls back to its own in-memory window of N
per second (one warning per outage): the deployment may then start up to N times the
number of processes per second, which ASAPP answers with 429s that the client retries.

A flow event that reads the call's record and then calls the API reads the record and
reserves the request's slot in one script (``get_reserving``): one round trip instead of
two. Should the record show that no request is needed after all (a redelivered webhook),
the slot goes unused: the limit is then only stricter, never looser.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

import redis

from adapter.genagent.ratelimit import SlidingWindow, StartSlot
from adapter.store.base import CallStore, Stored
from adapter.store.codec import check_id
from adapter.store.redis import RECORD_FIELDS, RedisCallStore, read_record

log = logging.getLogger("adapter.store.shared_limit")

# reserve(window key, limit, window µs, latest acceptable delay µs, member): the delay in
# µs before the reserved start, or -1 if it would be too late.
_RESERVE_FUNCTION = """
local function reserve(key, limit, window, latest, member)
  local clock = redis.call('TIME')
  local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
  local count = redis.call('ZCARD', key)
  if count > limit then
    redis.call('ZREMRANGEBYRANK', key, 0, count - limit - 1)
    count = limit
  end
  local start = now
  if count == limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    start = math.max(now, tonumber(oldest[2]) + window)
  end
  if start > now + latest then return -1 end
  redis.call('ZADD', key, start, member)
  if count == limit then redis.call('ZREMRANGEBYRANK', key, 0, 0) end
  redis.call('PEXPIRE', key, math.floor((start - now + window) / 1000) + 1000)
  return start - now
end
"""
# KEYS: the window. ARGV: limit, window (µs), latest acceptable delay (µs), member.
_RESERVE = (
    _RESERVE_FUNCTION
    + "return reserve(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4])"
)
# KEYS: a call's record, the window. ARGV: as _RESERVE. The record's fields (as
# RedisCallStore.get reads them), then the delay.
_GET_AND_RESERVE = (
    _RESERVE_FUNCTION
    + f"local got = redis.call('HMGET', KEYS[1], {', '.join(map(repr, RECORD_FIELDS))})"
    + """
table.insert(got, reserve(KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
  ARGV[4]))
return got
"""
)

# Between a slot's reservation and the request leaving lie a Redis answer, a wake-up and
# a thread switch, up to tens of milliseconds on a busy machine; a window 10% longer keeps
# that jitter inside the limit (at most N starts per 1.1 s, so ~91/s for N = 100).
SAFETY_MARGIN = 0.1


class RedisRateWindow:
    """A SharedWindow in the Redis of a call store, falling back to a per-process window
    when Redis is out."""

    def __init__(self, store: RedisCallStore, key: str, per_second: int) -> None:
        self.key = key
        self.per_second = per_second
        self._store = store
        self._window_us = int((1.0 + SAFETY_MARGIN) * 1_000_000)
        self._reserve = store.client.register_script(_RESERVE)
        self._get_and_reserve = store.client.register_script(_GET_AND_RESERVE)
        self._fallback = SlidingWindow(per_second, 1.0 + SAFETY_MARGIN)
        self._lock = threading.Lock()
        self._outage = False

    def reserve_delay(self, within: float) -> float | None:
        """Seconds to wait for the reserved start, or None if it is over ``within`` away."""
        try:
            delay_us = self._reserve(keys=[self.key], args=self._args(within))
        except redis.RedisError as exc:
            return self._reserve_locally(within, exc)
        return self._answered(delay_us)

    def get_reserving(self, call_id: str, within: float) -> tuple[Stored | None, StartSlot]:
        """The call's record (as ``RedisCallStore.get``) and a start slot reserved for the
        API request that follows, in one round trip; StoreUnavailableError if Redis
        cannot be reached (the client then reserves its slot itself)."""
        check_id(call_id)
        keys = [self._store.record_key(call_id), self.key]
        with self._store.errors():
            answer = self._get_and_reserve(keys=keys, args=self._args(within))
        *fields, delay_us = answer
        return read_record(call_id, fields), StartSlot.after(self._answered(delay_us))

    def _args(self, within: float) -> list[int | str]:
        return [self.per_second, self._window_us, int(within * 1e6), uuid.uuid4().hex]

    def _answered(self, delay_us: int) -> float | None:
        """Redis reserved (or refused, -1): the delay in seconds, or None; Redis is back."""
        if self._outage:
            self._outage = False
            log.info("GenerativeAgent rate limit: Redis is back, the limit is shared again")
        delay = int(delay_us)
        return None if delay < 0 else delay / 1e6

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
        return RedisRateWindow(store, f"{store.prefix}ga-api-starts", per_second)
    return None
