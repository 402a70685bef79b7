"""Another process holding a SQLite database's write lock, for as long as a test says."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Takes the write lock (BEGIN IMMEDIATE), says so, and holds it until its stdin closes.
_HOLDER = (
    "import sqlite3, sys\n"
    "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
    "conn.execute('BEGIN IMMEDIATE')\n"
    "print('locked', flush=True)\n"
    "sys.stdin.read()\n"
    "conn.execute('COMMIT')\n"
)


@contextmanager
def write_lock_held_elsewhere(database: str | Path) -> Iterator[None]:
    """SQLite's write lock on ``database`` held by another process inside the block."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(database)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdin is not None
    assert holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.stdin.close()  # the holder commits and exits
        holder.wait(timeout=60)
