"""WAL checkpoints off the request path, on a thread of their own.

By default SQLite checkpoints when a commit takes the WAL past 1,000 pages: that commit
copies the pages back into the database and fsyncs it (with ``synchronous=NORMAL``
these are the store's only fsyncs), so every few hundred webhooks one of them waits for
the disk. Here a daemon thread per process that writes runs a PASSIVE checkpoint every
``interval`` seconds (it never blocks a reader or a writer, and the fsync is its own),
and commits checkpoint only past BACKSTOP_PAGES: should the thread stop, commits
checkpoint again, if late.

A PASSIVE checkpoint never starts the WAL over by itself: SQLite does that when a write
begins after a checkpoint that copied every frame, and under steady load another write
lands while the thread's checkpoint runs. So under steady load the WAL file grows to the
backstop (80 MiB), where a commit's own checkpoint catches up and the WAL starts over:
a few commits pay an fsync about once a minute at a few hundred webhooks a second. A
RESTART checkpoint every round would keep the file small but holds every writer through
its fsync; measured, it did not raise throughput and the webhook's p99 was worse.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading

log = logging.getLogger("adapter.store")

CHECKPOINT_INTERVAL_SECONDS = 1.0
BACKSTOP_PAGES = 20_000  # wal_autocheckpoint of the connections that write (80 MiB of WAL)


class Checkpointer:
    """Checkpoints the WAL of the database at ``path`` while the process writes to it."""

    def __init__(self, path: str, interval: float = CHECKPOINT_INTERVAL_SECONDS) -> None:
        self.path = path
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def ensure_running(self) -> None:
        """Start the thread in this process if it is not running (cheap when it is)."""
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's thread did not come along
                self._thread, self._pid = None, os.getpid()
                self._stop = threading.Event()
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name=f"sqlite-checkpoint:{self.path}", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        """Stop the thread after one last checkpoint."""
        self._stop.set()
        thread = self._thread
        if thread is not None and self._pid == os.getpid() and thread.is_alive():
            thread.join(timeout=5.0)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(self.path, timeout=1.0, isolation_level=None)
            while not self._stop.wait(self.interval):
                _checkpoint(conn)
            _checkpoint(conn)
        except sqlite3.Error:
            log.exception("WAL checkpoints stopped; commits will checkpoint instead")
        finally:
            if conn is not None:
                conn.close()


def _checkpoint(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    except sqlite3.OperationalError as exc:  # busy: the next round will do it
        log.debug("WAL checkpoint skipped: %s", exc)
