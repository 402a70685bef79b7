"""Per-call leases in Redis, for AMI workers running active-active.

Keys, under the store's prefix:

- ``lease:<call>``: the holder's fencing token, ``SET NX PX ttl``; extended and deleted
  only by the holder (Lua compare-and-extend, compare-and-delete);
- ``leases``: a sorted set of leased calls scored by when their lease runs out, so a
  survivor finds the calls of a dead worker without scanning the keyspace;
- ``acted:<call>``: a hash of the decisions carried out on the call, each written once
  (HSETNX) and only by the lease's holder;
- ``workers``: a sorted set of the workers alive, scored by when their membership runs
  out. Each call has a preferred worker among them (rendezvous hashing), which claims a
  new call at once while the others wait ``CLAIM_GRACE``: the calls are spread evenly,
  and a preferred worker that is dead or deaf costs its calls that short wait.

Every script touches one call's keys and the registry: a single Redis (or a primary
with replicas), not Redis Cluster.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import secrets
import socket
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from adapter.asterisk.leases import CallLeases, Fence, LeaseError
from adapter.store import StoreOptions

# How long a decision is remembered: far longer than any event can arrive late.
ACTED_TTL_MS = 15 * 60 * 1000
_RENEW_BATCH = 500
# Scripts take microseconds: a few dozen connections serve a worker's whole event loop,
# and a burst of hand-offs waits for one instead of opening hundreds at once. Waiting for
# a free connection is local contention, not a Redis failure: it may take longer than a
# command may.
_POOL_SIZE = 32
_POOL_WAIT = 5.0
# A claim or a fence that fails is tried again this many times, this far apart, before
# the call is left to the dialplan's safety timeout (a busy machine, a Redis fail-over).
_TRIES = 3
_PAUSE = 0.2
# How long a worker that is not a call's preferred one waits before claiming it.
CLAIM_GRACE = 0.2

_NOW_MS = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"

# KEYS: lease, registry. ARGV: token, ttl ms, call id.
_ACQUIRE = (
    _NOW_MS
    + """
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return 0 end
if held then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[3])
return 1
"""
)

# KEYS: registry, lease 1..n. ARGV: ttl ms, token 1..n, call id 1..n. Returns lost calls.
_RENEW = (
    _NOW_MS
    + """
local n = #KEYS - 1
local lost = {}
for i = 1, n do
  if redis.call('GET', KEYS[i + 1]) == ARGV[i + 1] then
    redis.call('PEXPIRE', KEYS[i + 1], ARGV[1])
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[n + i + 1])
  else
    lost[#lost + 1] = ARGV[n + i + 1]
  end
end
return lost
"""
)

# KEYS: lease, registry. ARGV: token, call id. A clean stop: an orphan at once.
_HAND_OVER = (
    _NOW_MS
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZADD', KEYS[2], now, ARGV[2])
return 1
"""
)

# KEYS: workers. ARGV: this worker, ttl ms. Returns the workers alive.
_MEMBERS = (
    _NOW_MS
    + """
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)
return redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
"""
)

# KEYS: lease, acted. ARGV: token, decision, acted ttl ms, this fence's mark (token#nonce).
# 1 granted, 0 acted, -1 lost. The mark makes a retried call (a reply lost on a broken
# connection) idempotent, while a replay of the decision, with a new mark, is refused.
_FENCE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local mark = redis.call('HGET', KEYS[2], ARGV[2])
if mark == ARGV[4] then return 1 end
if mark then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
"""

# KEYS: acted. ARGV: decision, token.
_UNFENCE = """
local mark = redis.call('HGET', KEYS[1], ARGV[1])
if mark and string.sub(mark, 1, #ARGV[2] + 1) == ARGV[2] .. '#' then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 1
"""

# KEYS: lease, registry. ARGV: token, call id.
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
"""

# KEYS: registry. ARGV: lease key prefix, limit. Registered calls past their lease's end
# whose lease key is gone (a lease renewed late keeps its key: it is not an orphan).
_ORPHANS = (
    _NOW_MS
    + """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local free = {}
for _, id in ipairs(ids) do
  if redis.call('EXISTS', ARGV[1] .. id) == 0 then free[#free + 1] = id end
end
return free
"""
)


class RedisLeases(CallLeases):
    """Leases shared by every worker through one Redis."""

    def __init__(self, url: str, options: StoreOptions, *, ttl: float, owner: str = "") -> None:
        extra: dict[str, Any] = {}
        if url.lower().startswith("rediss://") and not options.tls_verify:
            extra["ssl_cert_reqs"] = "none"
        # One retry on a fresh connection: every script is idempotent for its caller.
        retry = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError, RedisTimeoutError))
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=_POOL_SIZE,
            timeout=max(options.timeout, _POOL_WAIT),
            socket_timeout=options.timeout,
            socket_connect_timeout=options.connect_timeout,
            retry=retry,
            decode_responses=True,
            **extra,
        )
        self._redis = aioredis.Redis(connection_pool=pool)
        self.prefix = options.key_prefix
        self.ttl_ms = max(1, int(ttl * 1000))
        # The token names its holder (host, pid) for whoever reads the key while debugging.
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._tokens: dict[str, str] = {}
        self._counter = itertools.count(1)
        self._registry = f"{self.prefix}leases"
        self._workers = f"{self.prefix}workers"
        self._members: list[str] = []
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._renew = self._redis.register_script(_RENEW)
        self._fence = self._redis.register_script(_FENCE)
        self._unfence = self._redis.register_script(_UNFENCE)
        self._release = self._redis.register_script(_RELEASE)
        self._orphans = self._redis.register_script(_ORPHANS)
        self._hand_over = self._redis.register_script(_HAND_OVER)
        self._leave = self._redis.register_script("return redis.call('ZREM', KEYS[1], ARGV[1])")
        self._members_script = self._redis.register_script(_MEMBERS)

    def _lease(self, call_id: str) -> str:
        return f"{self.prefix}lease:{call_id}"

    def _acted(self, call_id: str) -> str:
        return f"{self.prefix}acted:{call_id}"

    async def acquire(self, call_id: str) -> bool:
        if call_id in self._tokens:
            return True  # renewed in the background; the fence checks it before any action
        token = f"{self.owner}:{next(self._counter)}"
        keys = [self._lease(call_id), self._registry]
        # Tried again with the same token: a retry of an acquisition that was applied
        # (its answer lost) finds the lease ours.
        granted = await self._persist(self._acquire, keys, [token, self.ttl_ms, call_id])
        if granted == 1:
            self._tokens[call_id] = token
            return True
        self._tokens.pop(call_id, None)
        return False

    async def fence(self, call_id: str, decision: str) -> Fence:
        token = self._tokens.get(call_id)
        if token is None:
            return Fence.LEASE_LOST
        keys = [self._lease(call_id), self._acted(call_id)]
        mark = f"{token}#{secrets.token_hex(4)}"
        answer = await self._persist(self._fence, keys, [token, decision, ACTED_TTL_MS, mark])
        if answer == 1:
            return Fence.GRANTED
        if answer == 0:
            return Fence.ALREADY_ACTED
        self._tokens.pop(call_id, None)
        return Fence.LEASE_LOST

    async def unfence(self, call_id: str, decision: str) -> None:
        token = self._tokens.get(call_id)
        if token is not None:
            await self._call(self._unfence, [self._acted(call_id)], [decision, token])

    async def release(self, call_id: str) -> None:
        token = self._tokens.pop(call_id, None)
        if token is not None:
            keys = [self._lease(call_id), self._registry]
            await self._call(self._release, keys, [token, call_id])

    async def renew(self) -> set[str]:
        lost: set[str] = set()
        held = list(self._tokens.items())
        for start in range(0, len(held), _RENEW_BATCH):
            batch = held[start : start + _RENEW_BATCH]
            keys = [self._registry, *(self._lease(call_id) for call_id, _ in batch)]
            args: list[Any] = [self.ttl_ms, *(t for _, t in batch), *(c for c, _ in batch)]
            answer = await self._call(self._renew, keys, args)
            lost.update(str(call_id) for call_id in answer or ())
        for call_id in lost:
            self._tokens.pop(call_id, None)
        members = await self._call(self._members_script, [self._workers], [self.owner, self.ttl_ms])
        self._members = [str(member) for member in members or ()]
        return lost

    def claim_delay(self, call_id: str) -> float:
        if call_id in self._tokens or self.owner not in self._members:
            return 0.0
        preferred = max(self._members, key=lambda member: _weight(member, call_id))
        return 0.0 if preferred == self.owner else CLAIM_GRACE

    async def orphans(self, limit: int = 1000) -> list[str]:
        answer = await self._call(self._orphans, [self._registry], [f"{self.prefix}lease:", limit])
        return [str(call_id) for call_id in answer or () if call_id not in self._tokens]

    @property
    def held(self) -> frozenset[str]:
        return frozenset(self._tokens)

    async def close(self) -> None:
        """Hand the calls held over (the others adopt them at once) and leave."""
        try:
            for call_id, token in list(self._tokens.items()):
                keys = [self._lease(call_id), self._registry]
                await self._call(self._hand_over, keys, [token, call_id])
            await self._call(self._leave, [self._workers], [self.owner])
        except LeaseError:
            pass  # the leases run out by themselves
        finally:
            self._tokens.clear()
            await self._redis.aclose()

    async def _persist(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """``_call``, tried up to _TRIES times: for the calls a caller waits on."""
        for _ in range(_TRIES - 1):
            try:
                return await self._call(script, keys, args)
            except LeaseError:
                await asyncio.sleep(_PAUSE)
        return await self._call(script, keys, args)

    @staticmethod
    async def _call(script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await cast(Any, script(keys=keys, args=args))
        except (RedisError, OSError) as exc:
            # The URL may hold a password, and so may the text: only the type is named.
            raise LeaseError(f"the lease store cannot be used: {type(exc).__name__}") from None


def _weight(member: str, call_id: str) -> bytes:
    """Rendezvous hashing: the member with the highest weight is the call's preferred one."""
    return hashlib.blake2b(f"{member}|{call_id}".encode(), digest_size=8).digest()
