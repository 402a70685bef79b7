"""SQLite writers wait for another writer's lock in short pauses, never in SQLite's
sleeping busy handler, and give up with StoreUnavailableError after the busy timeout;
WAL checkpoints run on a thread of their own."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from adapter.store import StoreUnavailableError
from adapter.store import sqlite as sqlite_store
from adapter.store.sqlite import SQLiteCallStore
from tests.sqlite_locks import write_lock_held_elsewhere


def test_a_write_waits_for_another_process_s_write_lock(tmp_path: Path) -> None:
    database = tmp_path / "calls.sqlite3"
    store = SQLiteCallStore(str(database))
    store.create("CA0", {"n": 0})
    written = threading.Event()

    def write() -> None:
        store.create("CA1", {"n": 1})
        written.set()

    with write_lock_held_elsewhere(database):
        assert store.get("CA0") is not None  # WAL: readers never wait for writers
        writer = threading.Thread(target=write)
        writer.start()
        assert not written.wait(0.3)  # waiting for the lock
    writer.join(timeout=30)
    assert written.is_set()  # then written, once the lock was given back
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
    with write_lock_held_elsewhere(database), pytest.raises(StoreUnavailableError, match="locked"):
        store.update("CA0", {"n": 1}, expected_version=1, active=False)
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
