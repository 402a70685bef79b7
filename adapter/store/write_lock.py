"""One SQLite writer at a time across the threads and processes of one machine.

SQLite lets one connection write at a time; the others wait in its busy handler, which
sleeps 1, 2, 5, 10 ... ms between tries, so a webhook that loses the race answers
milliseconds late though the winner held the lock for some 0.1 ms. Queuing the writers
on a lock the kernel hands over at once (``flock`` on a file next to the database, after a
``threading.Lock`` since ``flock`` does not tell one process's threads apart) leaves the
busy handler with nothing to wait for. The kernel drops a ``flock`` with its process, so a
crashed writer never leaves the lock held.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from adapter.store.base import WriteWouldWait


class WriteLock:
    """Exclusive for writes to the database at ``path`` (``None``: this process only)."""

    def __init__(self, path: str | None) -> None:
        self._path = None if path is None else f"{path}.write-lock"
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._pid = os.getpid()

    @contextmanager
    def held(self, *, wait: bool = True) -> Iterator[None]:
        """Hold the lock for the duration of one write; without ``wait``, WriteWouldWait
        if another thread or process holds it."""
        if self._pid != os.getpid():  # forked: the parent's locks and descriptor are not ours
            self._thread_lock = threading.Lock()
            self._fd, self._pid = None, os.getpid()
        if not self._thread_lock.acquire(blocking=wait):
            raise WriteWouldWait("another thread is writing")
        try:
            fd = self._file()
            if fd is None:
                yield
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise WriteWouldWait("another process is writing") from None
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def close(self) -> None:
        """Close the lock file (the lock is not held between writes)."""
        with self._thread_lock:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = None

    def _file(self) -> int | None:
        if self._path is None:
            return None
        if self._fd is None:
            try:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                self._path = None  # a read-only directory: SQLite's own locking still works
                return None
        return self._fd
