"""Per-call leases in Redis, for AMI workers running active-active.

Keys, under the store's prefix:

- ``lease:<call>``: the holder's fencing token, ``SET NX PX ttl``; extended and deleted
  only by the holder (Lua compare-and-extend, compare-and-delete);
- ``leases``: a sorted set of leased calls scored by when their lease runs out, so a
  survivor finds the calls of a dead worker without scanning the keyspace;
- ``acted:<call>``: a hash of the decisions carried out on the call, each recorded once
  (with the mark of the fence that recorded it) and only by the lease's holder;
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

from adapter.asterisk.lease_scripts import (
    ACQUIRE,
    FENCE,
    HAND_OVER,
    MEMBERS,
    ORPHANS,
    RELEASE,
    RENEW,
    UNFENCE,
)
from adapter.asterisk.leases import CallLeases, Fence, LeaseError
from adapter.store import StoreOptions

# How long a decision is remembered: far longer than any event can arrive late.
ACTED_TTL_MS = 15 * 60 * 1000
RENEW_BATCH = 500
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
        self._acquire = self._redis.register_script(ACQUIRE)
        self._renew = self._redis.register_script(RENEW)
        self._fence = self._redis.register_script(FENCE)
        self._unfence = self._redis.register_script(UNFENCE)
        self._release = self._redis.register_script(RELEASE)
        self._orphans = self._redis.register_script(ORPHANS)
        self._hand_over = self._redis.register_script(HAND_OVER)
        self._leave = self._redis.register_script("return redis.call('ZREM', KEYS[1], ARGV[1])")
        self._members_script = self._redis.register_script(MEMBERS)

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
        for start in range(0, len(held), RENEW_BATCH):
            batch = held[start : start + RENEW_BATCH]
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
