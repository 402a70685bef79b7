"""AsyncTransferFlow writes a SQLite store inline on the event loop when the write lock is
free, and on the store's thread when another writer holds it (a thread of this process,
or another process): the loop never waits on the lock."""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapter.flow import AsyncTransferFlow, CallStart, Dial, FlowPolicy
from adapter.genagent import AsyncGenAgentClient
from adapter.sandbox import SandboxServer
from adapter.store import SQLiteCallStore, WriteWouldWait
from adapter.store.write_lock import WriteLock
from tests.conftest import FAST_RETRIES, settings_for


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteCallStore]:
    opened = SQLiteCallStore(str(tmp_path / "flow.sqlite3"))
    yield opened
    opened.close()


class _OtherProcessLock:
    """flock on the store's lock file through a descriptor of its own: for this process's
    WriteLock it is held exactly as by another process."""

    def __init__(self, store: SQLiteCallStore) -> None:
        self._fd = os.open(f"{store.path}.write-lock", os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *_exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def test_a_lock_held_elsewhere_is_reported_not_waited_for(tmp_path: Path) -> None:
    lock = WriteLock(str(tmp_path / "db"))
    with lock.held(wait=False):
        pass  # free: taken and given back
    fd = os.open(f"{tmp_path / 'db'}.write-lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(WriteWouldWait), lock.held(wait=False):
            pass
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock.held():
            taken.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert taken.wait(30)
        with pytest.raises(WriteWouldWait), lock.held(wait=False):
            pass
    finally:
        release.set()
        holder.join()
    with lock.held(wait=False):
        pass
    lock.close()


def test_a_write_that_would_wait_is_tried_nowhere_else(store: SQLiteCallStore) -> None:
    with _OtherProcessLock(store), store.without_waiting(), pytest.raises(WriteWouldWait):
        store.create("c-1", {"call_id": "c-1"})
    assert store.get("c-1") is None
    store.create("c-1", {"call_id": "c-1"})  # outside: waits as always (here: free)
    assert store.get("c-1") is not None


def test_the_flow_writes_inline_when_free_and_on_the_thread_when_not(
    sandbox: SandboxServer, store: SQLiteCallStore
) -> None:
    writers: list[str] = []
    create = store.create

    def watched_create(*args: object, **kwargs: object) -> object:
        writers.append(threading.current_thread().name)
        return create(*args, **kwargs)  # type: ignore[arg-type]

    store.create = watched_create  # type: ignore[method-assign]

    async def scenario() -> None:
        async with AsyncGenAgentClient(settings_for(sandbox.url), policy=FAST_RETRIES) as ga:
            flow = AsyncTransferFlow(ga, store, FlowPolicy())
            try:
                assert isinstance(await flow.start(CallStart("free", "conv-1", "US")), Dial)
                assert writers == [threading.current_thread().name]
                with _OtherProcessLock(store):
                    held = asyncio.ensure_future(flow.start(CallStart("held", "conv-2", "US")))
                    # The loop keeps running while the store's thread waits for the lock.
                    while len(writers) < 3:  # the inline try, then the thread's write
                        await asyncio.sleep(0.01)
                    assert not held.done()
                assert isinstance(await held, Dial)
                assert writers[1] == threading.current_thread().name
                assert writers[2].startswith("call-store")
            finally:
                flow.close()

    asyncio.run(scenario())
    assert store.get("held") is not None
