"""The Redis call store: call state shared by every instance of a deployment.

Layout under the key prefix (``genagent:`` by default, so one Redis can be shared):

- ``<prefix>call:<id>``: a hash with ``v`` (version), ``a`` (active 0/1), ``t`` (written
  at, epoch seconds) and ``d`` (the JSON data); it expires ``retention`` after its last
  write, so no purge scan is needed.
- ``<prefix>active``: sorted set of active ids scored by write time (resynchronisation).
- ``<prefix>recent``: sorted set of every id scored by write time (the call history),
  trimmed to the retention window on every write.

The indexes expire too when nothing has been written for the retention period.

Each write is one Lua script: the record, its version and both index entries change
together or not at all. A connection error is retried once on a fresh connection (a
Redis restart leaves dead sockets in the pool); a timeout is not: a slow Redis fails
fast. (Should a retried write have been applied before its connection broke, the retry
reports StaleWriteError, which callers already answer by reading again.) Every failure
to reach Redis raises StoreUnavailableError. Neither stored data nor
the URL's password ever appears in a message.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from adapter.observe.masking import mask_url
from adapter.store.base import CallStore, StaleWriteError, Stored, StoreError, StoreUnavailableError
from adapter.store.codec import check_id, check_limit, decode, encode
from adapter.store.options import StoreOptions

# KEYS: record, active index, recent index.
# ARGV: mode ("create" | "update"), expected version, active 0/1, now, data, ttl ms,
#       index cutoff (entries older than it are trimmed).
_WRITE = """
local version = redis.call('HGET', KEYS[1], 'v')
local id = ARGV[8]
if ARGV[1] == 'create' then
  if version then return {'exists', version} end
  version = 1
else
  if not version then return {'missing', '0'} end
  if version ~= ARGV[2] then return {'stale', version} end
  version = tonumber(version) + 1
end
redis.call('HSET', KEYS[1], 'v', version, 'a', ARGV[3], 't', ARGV[4], 'd', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[2], ARGV[4], id)
else
  redis.call('ZREM', KEYS[2], id)
end
redis.call('ZADD', KEYS[3], ARGV[4], id)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[7])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
redis.call('PEXPIRE', KEYS[3], ARGV[6])
return {'ok', tostring(version)}
"""

# KEYS: active index, recent index. ARGV: cutoff, record key prefix.
# Deletes records not written since the cutoff and their index entries.
_PURGE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
local deleted = 0
for _, id in ipairs(ids) do
  local key = ARGV[2] .. id
  local written = redis.call('HGET', key, 't')
  if written and tonumber(written) < tonumber(ARGV[1]) then
    deleted = deleted + redis.call('DEL', key)
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])
return deleted
"""

log = logging.getLogger("adapter.store.redis")

_PAGE = 200
#: A record's hash fields, in the order ``read_record`` takes them.
RECORD_FIELDS = ("v", "a", "t", "d")


class RedisCallStore(CallStore):
    """A CallStore in one Redis (not Redis Cluster: each script touches several keys)."""

    def __init__(self, url: str, options: StoreOptions | None = None) -> None:
        self.options = options or StoreOptions()
        self.prefix = self.options.key_prefix
        extra: dict[str, Any] = {}
        if url.lower().startswith("rediss://") and not self.options.tls_verify:
            extra["ssl_cert_reqs"] = "none"
        try:
            self._redis = redis.Redis.from_url(
                url,
                socket_timeout=self.options.timeout,
                socket_connect_timeout=self.options.connect_timeout,
                health_check_interval=30,
                retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
                max_connections=self.options.max_connections,
                decode_responses=True,
                **extra,
            )
        except ValueError as exc:
            # redis-py's messages about a URL do not echo the password; keep only the kind.
            raise ValueError(f"STORE_URL is not a valid Redis URL ({type(exc).__name__})") from None
        self._write = self._redis.register_script(_WRITE)
        self._purge = self._redis.register_script(_PURGE)
        self._active_key = f"{self.prefix}active"
        self._recent_key = f"{self.prefix}recent"
        self._closed = False
        log.info("call store: Redis at %s, key prefix %r", mask_url(url), self.prefix)

    def __repr__(self) -> str:
        return f"RedisCallStore(prefix={self.prefix!r})"

    @property
    def client(self) -> redis.Redis:
        """The pooled client, for other state the deployment shares (the API rate limit)."""
        return self._redis

    def get(self, call_id: str) -> Stored | None:
        check_id(call_id)
        with self.errors():
            fields = cast(
                list[str | None], self._redis.hmget(self.record_key(call_id), *RECORD_FIELDS)
            )
        return read_record(call_id, fields)

    def create(self, call_id: str, data: dict[str, Any], *, active: bool = True) -> Stored:
        return self._save("create", call_id, data, 0, active)

    def update(
        self, call_id: str, data: dict[str, Any], *, expected_version: int, active: bool
    ) -> Stored:
        return self._save("update", call_id, data, expected_version, active)

    def active_ids(self, limit: int = 10_000) -> list[str]:
        check_limit(limit)
        if limit == 0:
            return []
        cutoff = time.time() - self.options.retention_seconds
        with self.errors():
            ids = cast(
                list[str],
                self._redis.zrangebyscore(self._active_key, cutoff, "+inf", start=0, num=limit),
            )
        return ids

    def recent(self, limit: int = 100, since: float | None = None) -> list[Stored]:
        check_limit(limit)
        floor = time.time() - self.options.retention_seconds
        low = floor if since is None else max(since, floor)
        found: dict[str, Stored] = {}
        offset = 0
        while len(found) < limit:
            with self.errors():
                ids = cast(
                    list[str],
                    self._redis.zrevrangebyscore(
                        self._recent_key, "+inf", low, start=offset, num=_PAGE
                    ),
                )
                if not ids:
                    break
                pipe = self._redis.pipeline(transaction=False)
                for call_id in ids:
                    pipe.hmget(self.record_key(call_id), *RECORD_FIELDS)
                rows = pipe.execute()
            offset += len(ids)
            # A record may have expired before its index entry was trimmed: skip it. One
            # written again between two pages may come twice: keep its newest state.
            for call_id, fields in zip(ids, rows, strict=True):
                record = read_record(call_id, fields)
                if record is not None and (
                    call_id not in found or found[call_id].updated_at < record.updated_at
                ):
                    found[call_id] = record
        newest_first = sorted(found.values(), key=lambda record: record.updated_at, reverse=True)
        return newest_first[:limit]

    def purge(self, older_than_seconds: float) -> int:
        """Delete records not written for ``older_than_seconds`` at once; expiry does the
        same after the retention period without being asked."""
        if not older_than_seconds >= 0 or math.isinf(older_than_seconds):
            raise ValueError(
                f"older_than_seconds must be a finite number >= 0, got {older_than_seconds}"
            )
        cutoff = time.time() - older_than_seconds
        with self.errors():
            deleted = self._purge(
                keys=[self._active_key, self._recent_key], args=[repr(cutoff), self.record_key("")]
            )
        return int(deleted)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._redis.close()
            self._redis.connection_pool.disconnect()

    def _save(
        self, mode: str, call_id: str, data: dict[str, Any], expected: int, active: bool
    ) -> Stored:
        check_id(call_id)
        text = encode(data)
        now = time.time()
        args = [
            mode,
            str(expected),
            "1" if active else "0",
            repr(now),
            text,
            str(max(1, int(self.options.retention_seconds * 1000))),
            repr(now - self.options.retention_seconds),
            call_id,
        ]
        with self.errors():
            outcome, version = self._write(
                keys=[self.record_key(call_id), self._active_key, self._recent_key], args=args
            )
        if outcome == "exists":
            raise StaleWriteError(f"call {call_id!r} already exists")
        if outcome == "missing":
            raise StaleWriteError(f"call {call_id!r} does not exist")
        if outcome == "stale":
            raise StaleWriteError(f"call {call_id!r} is at version {version}, not {expected}")
        return Stored(call_id, json.loads(text), int(version), active, now)

    def record_key(self, call_id: str) -> str:
        """The key of a call's record hash."""
        return f"{self.prefix}call:{call_id}"

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Redis errors become StoreErrors naming the kind of failure only (for any use of
        the store's client)."""
        if self._closed:
            raise StoreError("the Redis call store is closed")
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailableError(
                f"the Redis call store cannot be reached ({type(exc).__name__})"
            ) from None
        except redis.RedisError as exc:
            # Server replies (e.g. NOAUTH, READONLY) carry no stored data.
            raise StoreUnavailableError(f"the Redis call store failed: {exc}") from None


def read_record(call_id: str, fields: list[str | None]) -> Stored | None:
    """The record whose RECORD_FIELDS were read as ``fields``; None if there is none."""
    version, active, written, text = fields
    if version is None or active is None or written is None or text is None:
        return None
    return Stored(call_id, decode(call_id, text), int(version), active == "1", float(written))
