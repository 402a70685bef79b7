"""SQLite writers queue on the store's WriteLock, across processes (flock) and threads;
WAL checkpoints run on a thread of their own."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from adapter.store.sqlite import SQLiteCallStore
from adapter.store.write_lock import WriteLock

TRY_LOCK = (
    "import fcntl, os, sys\n"
    "fd = os.open(sys.argv[1], os.O_RDWR)\n"
    "try:\n"
    "    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
    "except BlockingIOError:\n"
    "    print('held')\n"
    "else:\n"
    "    print('free')\n"
)


def other_process_sees(lock_file: Path) -> str:
    return subprocess.run(
        [sys.executable, "-c", TRY_LOCK, str(lock_file)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()


def test_the_lock_is_held_for_other_processes_only_during_a_write(tmp_path: Path) -> None:
    database = tmp_path / "calls.sqlite3"
    lock = WriteLock(str(database))
    with lock.held():
        assert other_process_sees(tmp_path / "calls.sqlite3.write-lock") == "held"
    assert other_process_sees(tmp_path / "calls.sqlite3.write-lock") == "free"
    lock.close()


def test_threads_of_one_process_take_turns(tmp_path: Path) -> None:
    lock = WriteLock(str(tmp_path / "db"))
    inside: list[int] = []
    overlaps: list[int] = []

    def write(n: int) -> None:
        for _ in range(200):
            with lock.held():
                inside.append(n)
                if len(inside) > 1:
                    overlaps.append(n)
                inside.remove(n)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert overlaps == []


def test_the_store_writes_under_the_lock_and_reads_without_it(tmp_path: Path) -> None:
    database = tmp_path / "calls.sqlite3"
    store = SQLiteCallStore(str(database))
    store.create("CA1", {"n": 1})
    assert (tmp_path / "calls.sqlite3.write-lock").exists()
    with WriteLock(str(database)).held():  # as another process's writer would
        stored = store.get("CA1")  # WAL: readers never wait for writers
    assert stored is not None
    assert stored.data == {"n": 1}
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
