"""SQLite writers wait for another writer's lock in short pauses, never in SQLite's
sleeping busy handler, and give up with StoreUnavailableError after the busy timeout;
WAL checkpoints run on a thread of their own."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from adapter.store import StoreUnavailableError
from adapter.store import sqlite as sqlite_store
from adapter.store.sqlite import SQLiteCallStore

# Another process takes SQLite's write lock (BEGIN IMMEDIATE), says so, and holds it.
HOLD_WRITE_LOCK = (
    "import sqlite3, sys, time\n"
    "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
    "conn.execute('BEGIN IMMEDIATE')\n"
    "print('locked', flush=True)\n"
    "time.sleep(float(sys.argv[2]))\n"
    "conn.execute('COMMIT')\n"
)


def hold_write_lock(database: Path, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_WRITE_LOCK, str(database), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_write_waits_for_another_process_s_write_lock(tmp_path: Path) -> None:
    database = tmp_path / "calls.sqlite3"
    store = SQLiteCallStore(str(database))
    store.create("CA0", {"n": 0})
    holder = hold_write_lock(database, 0.3)
    try:
        assert store.get("CA0") is not None  # WAL: readers never wait for writers
        started = time.monotonic()
        store.create("CA1", {"n": 1})
        waited = time.monotonic() - started
    finally:
        holder.wait(timeout=60)
    assert waited > 0.1  # it did wait for the lock, then wrote
    stored = store.get("CA1")
    assert stored is not None
    assert stored.data == {"n": 1}
    store.close()


def test_a_lock_held_past_the_busy_timeout_is_a_store_outage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_SECONDS", 0.2)
    database = tmp_path / "calls.sqlite3"
    store = SQLiteCallStore(str(database))
    store.create("CA0", {"n": 0})
    holder = hold_write_lock(database, 5)
    try:
        with pytest.raises(StoreUnavailableError, match="locked"):
            store.update("CA0", {"n": 1}, expected_version=1, active=False)
    finally:
        holder.kill()
        holder.wait(timeout=60)
    stored = store.get("CA0")
    assert stored is not None
    assert (stored.version, stored.data) == (1, {"n": 0})  # nothing half-written
    store.update("CA0", {"n": 1}, expected_version=1, active=False)  # the lock is gone
    store.close()


def test_threads_writing_at_once_all_land(tmp_path: Path) -> None:
    store = SQLiteCallStore(str(tmp_path / "calls.sqlite3"))
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(100):
                store.create(f"CA{n}-{i}", {"n": n, "i": i})
                stored = store.get(f"CA{n}-{i}")
                assert stored is not None
                store.update(
                    f"CA{n}-{i}", {"n": n, "i": i, "done": True}, expected_version=1, active=False
                )
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    recent = store.recent(limit=1000)
    assert len(recent) == 600
    assert all(r.version == 2 and r.data["done"] is True for r in recent)
    store.close()


def rows_in_the_main_file(database: Path) -> int:
    """What the database file itself holds, the WAL ignored (immutable=1 skips it)."""
    conn = sqlite3.connect(f"file:{database}?immutable=1", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM calls").fetchone()[0])
    except sqlite3.OperationalError:  # no table yet: the schema is still in the WAL
        return 0
    finally:
        conn.close()


def test_a_thread_checkpoints_the_wal_and_stops_with_the_store(tmp_path: Path) -> None:
    database = tmp_path / "calls.sqlite3"
    store = SQLiteCallStore(str(database))
    for n in range(50):
        store.create(f"CA{n}", {"n": n})
    deadline = time.monotonic() + 30
    while rows_in_the_main_file(database) < 50:
        assert time.monotonic() < deadline, "the WAL was never checkpointed"
        time.sleep(0.05)
    name = f"sqlite-checkpoint:{database}"
    assert name in {thread.name for thread in threading.enumerate()}
    store.close()
    assert name not in {thread.name for thread in threading.enumerate()}
