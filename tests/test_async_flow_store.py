"""AsyncTransferFlow writes a SQLite store inline on the event loop when the database is
free, and on the store's thread when another writer holds SQLite's write lock: the loop
never waits on the lock."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapter.flow import AsyncTransferFlow, CallStart, Dial, FlowPolicy
from adapter.genagent import AsyncGenAgentClient
from adapter.sandbox import SandboxServer
from adapter.store import SQLiteCallStore, WriteWouldWait
from tests.conftest import FAST_RETRIES, settings_for
from tests.sqlite_locks import write_lock_held_elsewhere


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteCallStore]:
    opened = SQLiteCallStore(str(tmp_path / "flow.sqlite3"))
    yield opened
    opened.close()


def test_a_write_that_would_wait_is_tried_nowhere_else(store: SQLiteCallStore) -> None:
    with write_lock_held_elsewhere(store.path), store.without_waiting():
        with pytest.raises(WriteWouldWait):
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
                with write_lock_held_elsewhere(store.path):
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
