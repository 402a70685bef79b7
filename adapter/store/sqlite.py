"""The SQLite call store: one file shared by every worker process on one machine.

WAL lets readers run alongside the single writer, and ``synchronous=NORMAL`` survives a
process crash (only a power cut can lose the last commits) without an fsync per commit.
Each thread opens its own connection on first use. Each write is one statement in
autocommit, so SQLite takes and releases its write lock inside that one call, with the
GIL released: no Python code runs while the lock is held, and a lock of our own around
the statement would be held across a wait for the GIL (milliseconds on a busy worker,
with every other writer queued behind it). A writer that finds the database locked
retries after a pause that starts at 50 µs (SQLite's own busy handler sleeps 1, 2, 5 ...
ms) for at most BUSY_TIMEOUT_SECONDS. One write per webhook. WAL checkpoints, and their
fsync, run on a thread of their own (checkpoints.py), not in a webhook's commit. Stored
data is never logged nor put in an error message: it holds caller variables and phone
numbers.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

from adapter.store.base import (
    CallStore,
    StaleWriteError,
    Stored,
    StoreError,
    StoreUnavailableError,
    WriteWouldWait,
)
from adapter.store.checkpoints import BACKSTOP_PAGES, Checkpointer
from adapter.store.codec import check_id, decode, encode

MEMORY = ":memory:"
BUSY_TIMEOUT_SECONDS = 5.0
_FIRST_PAUSE = 0.00005
_LONGEST_PAUSE = 0.002

T = TypeVar("T")

# One index besides the key: every write updates each index, and this one serves the
# worker's resync (active = 1), the history (each value of active, merged) and the purge.
# Files made before it had a second index on updated_at alone, dropped on opening.
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS calls ("
    " call_id TEXT PRIMARY KEY,"
    " version INTEGER NOT NULL,"
    " active INTEGER NOT NULL,"
    " updated_at REAL NOT NULL,"
    " data TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS calls_active_updated_at ON calls (active, updated_at)",
    "DROP INDEX IF EXISTS calls_updated_at",
)
# The history: the newest of each value of ``active`` (an index range each), merged, in
# one statement so that a record changing meanwhile is seen once.
_NEWEST = (
    "SELECT * FROM (SELECT call_id, version, active, updated_at, data, rowid AS r FROM calls"
    " WHERE active = {} AND updated_at >= ? ORDER BY updated_at DESC, rowid DESC LIMIT ?)"
)
_RECENT = (
    f"{_NEWEST.format(1)} UNION ALL {_NEWEST.format(0)} ORDER BY updated_at DESC, r DESC LIMIT ?"
)


class SQLiteCallStore(CallStore):
    """A CallStore in one SQLite file (or, for tests, one in-process ``:memory:`` database)."""

    def __init__(self, path: str) -> None:
        self._memory = path == MEMORY
        # Absolute now: connections are opened lazily, perhaps after a chdir.
        self.path = path if self._memory else os.path.abspath(path)
        self._local = threading.local()
        self._registry: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._registry_lock = threading.Lock()
        self._abandoned: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._closed = False
        # A :memory: database lives and dies with its connection: one, shared under a lock.
        self._shared: sqlite3.Connection | None = None
        self._shared_lock = threading.Lock()
        # WAL: a reader never waits for a writer (``:memory:`` shares one locked connection).
        self.local_reads = not self._memory
        # ... and a write that finds the lock free takes about as long as a read.
        self.inline_writes = not self._memory
        self._checkpoints = None if self._memory else Checkpointer(self.path)
        try:
            if self._memory:
                self._shared = self._connect()
                _create_schema(self._shared)
            else:
                self._prepare_file()
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailableError(
                f"cannot open the call store at {self.path}: {exc}"
            ) from exc

    def __repr__(self) -> str:
        return f"SQLiteCallStore({self.path!r})"

    def get(self, call_id: str) -> Stored | None:
        check_id(call_id)
        row = self._run(
            lambda conn: conn.execute(
                "SELECT version, active, updated_at, data FROM calls WHERE call_id = ?",
                (call_id,),
            ).fetchone()
        )
        if row is None:
            return None
        version, active, updated_at, text = row
        return Stored(call_id, decode(call_id, text), int(version), bool(active), updated_at)

    def create(self, call_id: str, data: dict[str, Any], *, active: bool = True) -> Stored:
        check_id(call_id)
        text = encode(data)
        now = time.time()
        inserted = self._write(
            lambda conn: (
                conn.execute(
                    "INSERT INTO calls (call_id, version, active, updated_at, data)"
                    " VALUES (?, 1, ?, ?, ?) ON CONFLICT (call_id) DO NOTHING",
                    (call_id, int(active), now, text),
                ).rowcount
            )
        )
        if inserted != 1:
            raise StaleWriteError(f"call {call_id!r} already exists")
        return Stored(call_id, json.loads(text), 1, active, now)

    def update(
        self, call_id: str, data: dict[str, Any], *, expected_version: int, active: bool
    ) -> Stored:
        check_id(call_id)
        text = encode(data)
        now = time.time()
        # The version check is in the UPDATE itself: one statement, atomic.
        updated = (
            self._write(
                lambda conn: (
                    conn.execute(
                        "UPDATE calls SET version = version + 1, active = ?, updated_at = ?,"
                        " data = ? WHERE call_id = ? AND version = ?",
                        (int(active), now, text, call_id, expected_version),
                    ).rowcount
                )
            )
            == 1
        )
        if not updated:  # for the message only: the version some other writer left
            current = self._run(
                lambda conn: conn.execute(
                    "SELECT version FROM calls WHERE call_id = ?", (call_id,)
                ).fetchone()
            )
            if current is None:
                raise StaleWriteError(f"call {call_id!r} does not exist")
            raise StaleWriteError(
                f"call {call_id!r} is at version {current[0]}, not {expected_version}"
            )
        return Stored(call_id, json.loads(text), expected_version + 1, active, now)

    def active_ids(self, limit: int = 10_000) -> list[str]:
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        rows = self._run(
            lambda conn: conn.execute(
                "SELECT call_id FROM calls WHERE active = 1 ORDER BY updated_at, rowid LIMIT ?",
                (limit,),
            ).fetchall()
        )
        return [call_id for (call_id,) in rows]

    def recent(self, limit: int = 100, since: float | None = None) -> list[Stored]:
        if limit < 0:
            raise ValueError(f"limit must not be negative, got {limit}")
        cutoff = -math.inf if since is None else since
        rows = self._run(
            lambda conn: conn.execute(_RECENT, (cutoff, limit, cutoff, limit, limit)).fetchall()
        )
        return [
            Stored(call_id, decode(call_id, text), int(version), bool(active), updated_at)
            for call_id, version, active, updated_at, text, _ in rows
        ]

    def purge(self, older_than_seconds: float) -> int:
        if not older_than_seconds >= 0 or math.isinf(older_than_seconds):
            raise ValueError(
                f"older_than_seconds must be a finite number >= 0, got {older_than_seconds}"
            )
        cutoff = time.time() - older_than_seconds
        deleted: int = self._write(
            lambda conn: (
                conn.execute(
                    "DELETE FROM calls WHERE active IN (1, 0) AND updated_at < ?", (cutoff,)
                ).rowcount
            )
        )
        return deleted

    def close(self) -> None:
        with self._registry_lock:
            if self._closed:
                return
            self._closed = True
            connections = [conn for _, conn in self._registry]
            self._registry.clear()
        if self._checkpoints is not None:
            self._checkpoints.stop()
        if self._shared is not None:
            with self._shared_lock:
                self._shared.close()
        for conn in connections:
            with suppress(sqlite3.Error):
                conn.close()

    def _prepare_file(self) -> None:
        """Create the directory, switch the file to WAL and create the schema, idempotently."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
        # A short-lived connection: nothing stays open until first use, so a store opened
        # before gunicorn forks its workers hands no connection down to them.
        conn = self._connect()
        try:
            while True:
                try:
                    (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
                    _create_schema(conn)
                    break
                except sqlite3.OperationalError as exc:
                    # While another process is setting up the same new file, the switch
                    # to WAL fails at once instead of waiting for the busy timeout.
                    if not _is_busy(exc) or time.monotonic() > deadline:
                        raise
                time.sleep(0.01)
        finally:
            conn.close()
        if str(mode).lower() != "wal":
            raise StoreUnavailableError(
                f"cannot use WAL journal mode for the call store at {self.path}"
                f" (got {mode!r}); it needs a local file system"
            )

    def _connect(self) -> sqlite3.Connection:
        # check_same_thread=False only so that close() may close other threads' connections;
        # each connection is still used by one thread (or under _shared_lock).
        conn = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_SECONDS,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
            # From here on a locked database answers at once and _run decides how to wait
            # (the set-up above may wait in SQLite's handler: once per connection).
            conn.execute("PRAGMA busy_timeout = 0")
        except BaseException:
            conn.close()
            raise
        return conn

    def _thread_connection(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            self._forget_parent_connections()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            with self._registry_lock:
                if self._closed:
                    conn.close()
                    raise StoreError(f"the call store at {self.path} is closed")
                self._close_dead_threads_connections()
                self._registry.append((threading.current_thread(), conn))
            self._local.conn = conn
        return conn

    def _close_dead_threads_connections(self) -> None:
        """Keep the registry as small as the live thread pool (caller holds the lock)."""
        live = []
        for thread, conn in self._registry:
            if thread.is_alive():
                live.append((thread, conn))
            else:
                with suppress(sqlite3.Error):
                    conn.close()
        self._registry = live

    def _forget_parent_connections(self) -> None:
        # SQLite forbids a forked child to use, or even close, its parent's connections:
        # keep them referenced and unused, and start afresh.
        self._abandoned.extend(conn for _, conn in self._registry)
        self._registry = []
        self._registry_lock = threading.Lock()
        self._local = threading.local()
        self._pid = os.getpid()

    def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` on this thread's connection (one statement: it is run again while the
        database is locked, up to BUSY_TIMEOUT_SECONDS); SQLite errors become StoreErrors."""
        if self._closed:
            raise StoreError(f"the call store at {self.path} is closed")
        pause, deadline = _FIRST_PAUSE, math.inf
        while True:
            try:
                if self._shared is not None:
                    with self._shared_lock:
                        return work(self._shared)
                return work(self._thread_connection())
            except sqlite3.OperationalError as exc:
                now = time.monotonic()
                deadline = min(deadline, now + BUSY_TIMEOUT_SECONDS)
                if not _is_busy(exc) or now >= deadline:
                    raise StoreUnavailableError(f"call store at {self.path}: {exc}") from exc
                if getattr(self._local, "no_wait", False):
                    raise WriteWouldWait("another writer holds the database") from None
            except sqlite3.Error as exc:
                raise StoreError(f"call store at {self.path}: {exc}") from exc
            time.sleep(pause)
            pause = min(pause * 2, _LONGEST_PAUSE)

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` as a write: WAL checkpoints run on their own thread meanwhile."""
        if self._checkpoints is not None:
            self._checkpoints.ensure_running()
        return self._run(work)

    @contextmanager
    def without_waiting(self) -> Iterator[None]:
        self._local.no_wait = True
        try:
            yield
        finally:
            self._local.no_wait = False


def _create_schema(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA:
        conn.execute(statement)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
