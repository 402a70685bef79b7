"""Per-call leases: which AMI worker acts on a call.

Asterisk sends every event to every logged-in AMI connection. With the Redis store
several workers share one Asterisk (active-active): the first to take a call's lease
acts for that call until the call leaves the adapter's hands, renewing the lease while
it lives; the others skip the call's events. A worker that dies stops renewing, its
leases expire after the TTL, and a survivor adopts the calls (``orphans``). Before a
decision's actions are sent, ``fence`` records the decision once, atomically with a
check that the lease is still held: a decision is acted on at most once, even for an
event seen late, replayed by a resynchronisation, or handled by a worker that lost its
lease while it worked.

With SQLite the worker is alone: ``SingleWorkerLeases`` grants every call, and an
exclusive lock on a file beside the database, held for the worker's life, refuses a
second worker on the same file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from abc import ABC, abstractmethod
from enum import Enum
from typing import IO

from adapter.store import CallStore, SQLiteCallStore, StoreOptions
from adapter.store.sqlite import MEMORY


class LeaseError(Exception):
    """The lease backend cannot be reached: no call is acted on without it."""


class SecondWorkerError(Exception):
    """Another AMI worker already uses this SQLite store."""


class Fence(Enum):
    """What ``fence`` found."""

    GRANTED = "granted"  # the decision is ours to carry out, now and only now
    ALREADY_ACTED = "already-acted"  # someone carried it out (or is doing so)
    LEASE_LOST = "lease-lost"  # another worker holds the call now


class CallLeases(ABC):
    """Who acts on which call; every method is safe to call from one event loop."""

    @abstractmethod
    async def acquire(self, call_id: str) -> bool:
        """Take the call's lease (True at once if this worker holds it: ``fence`` checks
        the lease again before any action); False if another worker holds it. LeaseError
        if the backend cannot answer."""

    @abstractmethod
    async def fence(self, call_id: str, decision: str) -> Fence:
        """Record that this worker is about to carry out ``decision`` on the call."""

    @abstractmethod
    async def unfence(self, call_id: str, decision: str) -> None:
        """Forget a fenced decision whose actions could not be sent at all."""

    @abstractmethod
    async def release(self, call_id: str) -> None:
        """Give the call up (it has left the adapter's hands)."""

    @abstractmethod
    async def renew(self) -> set[str]:
        """Extend every lease held; returns the calls whose lease was lost."""

    @abstractmethod
    def claim_delay(self, call_id: str) -> float:
        """Seconds to wait before claiming a call held by nobody: 0 for the call's
        preferred worker, a short grace for the others, so that calls spread evenly."""

    @abstractmethod
    async def orphans(self, limit: int = 1000) -> list[str]:
        """Calls some worker leased and nobody renews any more (its worker died)."""

    @property
    @abstractmethod
    def held(self) -> frozenset[str]:
        """The calls this worker holds."""

    @abstractmethod
    async def close(self) -> None:
        """Stop: hand the calls held over to the other workers, release connections."""


class SingleWorkerLeases(CallLeases):
    """The only worker: every call is its own; a lock file refuses a second one."""

    def __init__(self, lock_path: str | None = None) -> None:
        self.lock_path = lock_path
        self._lock: IO[bytes] | None = None
        self._held: set[str] = set()
        if lock_path is not None:
            self._lock = _exclusive_lock(lock_path)

    async def acquire(self, call_id: str) -> bool:
        self._held.add(call_id)
        return True

    async def fence(self, call_id: str, decision: str) -> Fence:
        # One worker sees each event once; a replay after a reconnect is deliberate.
        return Fence.GRANTED

    async def unfence(self, call_id: str, decision: str) -> None:
        return None

    async def release(self, call_id: str) -> None:
        self._held.discard(call_id)

    async def renew(self) -> set[str]:
        return set()

    async def orphans(self, limit: int = 1000) -> list[str]:
        return []

    def claim_delay(self, call_id: str) -> float:
        return 0.0

    @property
    def held(self) -> frozenset[str]:
        return frozenset(self._held)

    async def close(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the descriptor drops the lock
            self._lock = None


def open_leases(
    store_url: str, store: CallStore, options: StoreOptions, *, ttl: float
) -> CallLeases:
    """Redis leases (in the store's Redis, under its key prefix) when the store is Redis;
    otherwise the single worker's, locked on the SQLite file (SecondWorkerError if
    another worker holds it)."""
    scheme = store_url.strip().partition("://")[0].lower()
    if scheme in ("redis", "rediss"):
        from adapter.asterisk.redis_leases import RedisLeases

        return RedisLeases(store_url.strip(), options, ttl=ttl)
    if isinstance(store, SQLiteCallStore) and store.path != MEMORY:
        return SingleWorkerLeases(lock_path_for(store.path))
    return SingleWorkerLeases()


def lock_path_for(database: str) -> str:
    """The lock file of the worker using the SQLite database at ``database``."""
    return f"{os.path.abspath(database)}.worker.lock"


def _exclusive_lock(path: str) -> IO[bytes]:
    handle = open(path, "ab")  # noqa: SIM115  # held open for the worker's life
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise SecondWorkerError(
            f"another AMI worker already uses this SQLite call store (it holds {path}). "
            "With SQLite only one worker may run: stop the other one, or use a Redis "
            "STORE_URL to run several workers active-active"
        ) from None
    with contextlib.suppress(OSError):
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
    return handle
