"""GA_API_MAX_RPS across a deployment: several processes, the sync and the async client,
one Redis; each request's start is stamped as it leaves for the sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import threading
import time
from typing import Any

import httpx
import pytest

from adapter.genagent import AsyncGenAgentClient, GenAgentClient, NotFoundError
from adapter.genagent.ratelimit import RateLimiter
from adapter.genagent.retry import Deadline
from adapter.sandbox import SandboxServer
from adapter.store import StoreOptions, open_store
from adapter.store.shared_limit import SAFETY_MARGIN, shared_limit_for
from tests.conftest import FAST_RETRIES, settings_for
from tests.redis_server import RedisServer, free_port

LIMIT = 8


class StampingTransport(httpx.HTTPTransport):
    """The real HTTP transport, noting when each request leaves."""

    def __init__(self, starts: list[float]) -> None:
        super().__init__()
        self.starts = starts

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.starts.append(time.time())
        return super().handle_request(request)


class AsyncStampingTransport(httpx.AsyncHTTPTransport):
    def __init__(self, starts: list[float]) -> None:
        super().__init__()
        self.starts = starts

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.starts.append(time.time())
        return await super().handle_async_request(request)


def most_starts_in_one_window(starts: list[float], window: float = 1.0) -> int:
    """The largest number of starts in any half-open window [t, t + window)."""
    ordered = sorted(starts)
    most = 0
    first = 0
    for last, stamp in enumerate(ordered):
        while ordered[first] <= stamp - window:
            first += 1
        most = max(most, last - first + 1)
    return most


def hammer(kind: str, sandbox_url: str, redis_url: str, prefix: str, barrier: Any) -> list[float]:
    """One process of the deployment: 3 threads (sync) or 3 tasks (async), 4 requests each,
    every request a GET of an unknown transfer (a 404, never retried)."""
    store = open_store(redis_url, StoreOptions(key_prefix=prefix))
    settings = settings_for(sandbox_url, max_requests_per_second=LIMIT, deadline=30.0)
    shared = shared_limit_for(store, LIMIT)
    starts: list[float] = []
    barrier.wait(timeout=30)
    if kind == "sync":
        sync = GenAgentClient(
            settings, transport=StampingTransport(starts), policy=FAST_RETRIES, shared_limit=shared
        )

        def work() -> None:
            for n in range(4):
                with contextlib.suppress(NotFoundError):
                    sync.get_transfer(f"missing-{n}")

        threads = [threading.Thread(target=work) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        sync.close()
    else:

        async def main() -> None:
            client = AsyncGenAgentClient(
                settings,
                transport=AsyncStampingTransport(starts),
                policy=FAST_RETRIES,
                shared_limit=shared,
            )

            async def work() -> None:
                for n in range(4):
                    with contextlib.suppress(NotFoundError):
                        await client.get_transfer(f"missing-{n}")

            await asyncio.gather(*(work() for _ in range(3)))
            await client.aclose()

        asyncio.run(main())
    store.close()
    return starts


def test_processes_never_exceed_the_limit_in_any_one_second_window(
    sandbox: SandboxServer, redis_url: str, redis_options: StoreOptions
):
    kinds = ["sync", "async", "sync"]
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(len(kinds))
        with context.Pool(len(kinds)) as pool:
            results = [
                pool.apply_async(
                    hammer, (kind, sandbox.url, redis_url, redis_options.key_prefix, barrier)
                )
                for kind in kinds
            ]
            per_process = [result.get(timeout=120) for result in results]

    starts = [stamp for stamps in per_process for stamp in stamps]
    assert [len(stamps) for stamps in per_process] == [12, 12, 12]
    assert most_starts_in_one_window(starts) <= LIMIT
    # Binding, not just lenient: 36 starts at 8 per window need 4 full windows.
    assert max(starts) - min(starts) >= 4 * (1.0 + SAFETY_MARGIN) - 0.05


def test_without_redis_each_process_keeps_its_own_limit(caplog: pytest.LogCaptureFixture):
    server = RedisServer(free_port())  # not started yet: nothing listens on its port
    with open_store(server.url, StoreOptions(key_prefix="fallback:")) as store:
        window = shared_limit_for(store, 3)
        assert window is not None
        limiter = RateLimiter(3, shared=window)
        starts: list[float] = []
        with caplog.at_level(logging.INFO, logger="adapter.store.shared_limit"):
            for _ in range(7):
                limiter.acquire(Deadline.after(10))
                starts.append(time.monotonic())
            outage = [
                r.getMessage()
                for r in caplog.records
                if r.levelno == logging.WARNING and r.name == "adapter.store.shared_limit"
            ]

            server.start()
            try:
                limiter.acquire(Deadline.after(10))
                with server.client() as raw:
                    assert raw.zcard("fallback:ga-api-starts") == 1
            finally:
                server.stop()
        back = [
            r.getMessage()
            for r in caplog.records
            if r.levelno == logging.INFO and r.name == "adapter.store.shared_limit"
        ]

    assert most_starts_in_one_window(starts) <= 3
    assert max(starts) - min(starts) >= 2.0  # 7 starts at 3 a second
    assert len(outage) == 1  # once per outage, not per request
    assert "Redis unreachable" in outage[0]
    assert back == ["GenerativeAgent rate limit: Redis is back, the limit is shared again"]


def test_a_slot_beyond_the_deadline_is_refused_at_once(redis_url: str, redis_options: StoreOptions):
    with open_store(redis_url, redis_options) as store:
        window = shared_limit_for(store, 2)
        assert window is not None
        assert window.reserve_delay(0.0) == 0.0
        assert window.reserve_delay(0.0) == 0.0
        assert window.reserve_delay(0.1) is None  # the next slot is about a second away
        delay = window.reserve_delay(5.0)
        assert delay is not None
        assert 0.5 < delay <= 1.0 + SAFETY_MARGIN


def test_sqlite_keeps_the_per_process_limit(tmp_path: Any):
    with open_store(f"sqlite:///{tmp_path / 'calls.sqlite3'}") as store:
        assert shared_limit_for(store, 100) is None
