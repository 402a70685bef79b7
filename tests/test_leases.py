"""Per-call leases: in a real Redis (several holders, as several workers would be), and
the single worker's lock on its SQLite file."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.asterisk import WorkerSettings
from adapter.asterisk.leases import (
    Fence,
    LeaseError,
    SecondWorkerError,
    SingleWorkerLeases,
    lock_path_for,
    open_leases,
)
from adapter.asterisk.redis_leases import RedisLeases
from adapter.config import ConfigError
from adapter.store import SQLiteCallStore, StoreOptions
from tests.fake_ami.harness import async_test
from tests.redis_server import RedisServer

CALL = "1700000000.42"


def holders(url: str, options: StoreOptions, count: int, ttl: float = 5.0) -> list[RedisLeases]:
    """``count`` lease holders sharing one Redis, as ``count`` workers would."""
    return [RedisLeases(url, options, ttl=ttl, owner=f"worker-{n}") for n in range(count)]


async def close_all(leases: list[RedisLeases]) -> None:
    for lease in leases:
        await lease.close()


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0
) -> None:
    """Wait until ``check()`` is true (leases expire on Redis's clock, not ours)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


@async_test
async def test_one_holder_at_a_time_until_released(
    redis_url: str, redis_options: StoreOptions
) -> None:
    first, second = holders(redis_url, redis_options, 2)
    try:
        assert await first.acquire(CALL)
        assert not await second.acquire(CALL)
        assert await first.acquire(CALL)  # the holder keeps it
        assert first.held == {CALL}
        assert second.held == frozenset()
        await first.release(CALL)
        assert await second.acquire(CALL)
        assert not await first.acquire(CALL)
    finally:
        await close_all([first, second])


@async_test
async def test_many_workers_racing_for_many_calls_get_one_holder_each(
    redis_url: str, redis_options: StoreOptions
) -> None:
    workers = holders(redis_url, redis_options, 4)
    calls = [f"1700000000.{n}" for n in range(50)]
    try:
        results = await asyncio.gather(*(w.acquire(c) for c in calls for w in workers))
        assert sum(results) == len(calls)
        assert set().union(*(w.held for w in workers)) == set(calls)
        assert sum(len(w.held) for w in workers) == len(calls)
    finally:
        await close_all(workers)


@async_test
async def test_a_decision_is_granted_once_whoever_holds_the_call(
    redis_url: str, redis_options: StoreOptions
) -> None:
    first, second = holders(redis_url, redis_options, 2)
    try:
        assert await first.acquire(CALL)
        assert await first.fence(CALL, "dial 1-1") is Fence.GRANTED
        assert await first.fence(CALL, "dial 1-1") is Fence.ALREADY_ACTED  # a replay
        assert await second.fence(CALL, "route 1-1") is Fence.LEASE_LOST  # not its call
        await first.release(CALL)
        assert await second.acquire(CALL)
        assert await second.fence(CALL, "dial 1-1") is Fence.ALREADY_ACTED  # a late event
        assert await second.fence(CALL, "route 1-1") is Fence.GRANTED
        assert await first.fence(CALL, "route 1-1") is Fence.LEASE_LOST
    finally:
        await close_all([first, second])


@async_test
async def test_an_unsent_decision_can_be_fenced_again(
    redis_url: str, redis_options: StoreOptions
) -> None:
    [worker] = holders(redis_url, redis_options, 1)
    try:
        assert await worker.acquire(CALL)
        assert await worker.fence(CALL, "dial 1-1") is Fence.GRANTED
        await worker.unfence(CALL, "dial 1-1")
        assert await worker.fence(CALL, "dial 1-1") is Fence.GRANTED
    finally:
        await worker.close()


@async_test
async def test_a_dead_holders_calls_become_orphans_a_survivor_adopts(
    redis_url: str, redis_options: StoreOptions
) -> None:
    dead, survivor = holders(redis_url, redis_options, 2, ttl=0.3)
    other = "1700000000.43"
    try:
        assert await dead.acquire(CALL)
        assert await dead.acquire(other)
        assert await dead.fence(CALL, "dial 1-1") is Fence.GRANTED
        assert await survivor.orphans() == []
        # The dead worker stops renewing; the survivor keeps renewing what it holds.
        await eventually(lambda: _orphans_are(survivor, {CALL, other}), "orphans")
        assert await survivor.acquire(CALL)
        assert await survivor.orphans() == [other]
        assert await survivor.fence(CALL, "dial 1-1") is Fence.ALREADY_ACTED
        assert await dead.renew() == {CALL, other}  # it learns it lost both
        assert dead.held == frozenset()
        assert await dead.fence(CALL, "route 1-1") is Fence.LEASE_LOST
        await survivor.release(CALL)
        assert await survivor.acquire(other)
        await survivor.release(other)
        with redis.Redis.from_url(redis_url) as raw:
            assert raw.zcard(f"{redis_options.key_prefix}leases") == 0
    finally:
        await close_all([dead, survivor])


async def _orphans_are(leases: RedisLeases, expected: set[str]) -> bool:
    return set(await leases.orphans()) == expected


@async_test
async def test_renewal_keeps_a_lease_past_its_ttl(
    redis_url: str, redis_options: StoreOptions
) -> None:
    holder, other = holders(redis_url, redis_options, 2, ttl=0.3)
    try:
        assert await holder.acquire(CALL)
        loop = asyncio.get_running_loop()
        until = loop.time() + 1.5
        while loop.time() < until:  # five TTLs
            assert await holder.renew() == set()
            await asyncio.sleep(0.05)
        assert not await other.acquire(CALL)
        assert await other.orphans() == []
    finally:
        await close_all([holder, other])


decisions = st.sampled_from(["dial 1-1", "dial 1-2", "route 1-2", "route 1-3"])
operations = st.lists(
    st.tuples(st.integers(0, 2), st.sampled_from(["acquire", "release", "fence"]), decisions),
    max_size=40,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(script=operations)
def test_whatever_the_interleaving_each_decision_is_granted_at_most_once(
    redis_url: str, script: list[tuple[int, str, str]]
) -> None:
    prefix = f"prop-{abs(hash(tuple(script)))}-{id(script)}:"

    async def play() -> None:
        workers = holders(redis_url, StoreOptions(key_prefix=prefix), 3)
        granted: list[str] = []
        try:
            for worker, operation, decision in script:
                leases = workers[worker]
                if operation == "acquire":
                    await leases.acquire(CALL)
                elif operation == "release":
                    await leases.release(CALL)
                elif await leases.fence(CALL, decision) is Fence.GRANTED:
                    granted.append(decision)
            assert len(granted) == len(set(granted))
            assert sum(CALL in w.held for w in workers) <= 1
        finally:
            await close_all(workers)
            with redis.Redis.from_url(redis_url) as raw:
                for key in raw.scan_iter(f"{prefix}*"):
                    raw.delete(key)

    asyncio.run(play())


@async_test
async def test_an_unreachable_redis_is_a_lease_error_never_a_grant(
    redis_server: RedisServer,
) -> None:
    [worker] = holders(redis_server.url, StoreOptions(timeout=0.5, connect_timeout=0.5), 1)
    try:
        assert await worker.acquire(CALL)
        redis_server.stop()
        with pytest.raises(LeaseError) as raised:
            await worker.fence(CALL, "dial 1-1")
        assert "127.0.0.1" not in str(raised.value)
        with pytest.raises(LeaseError):
            await worker.acquire("1700000000.43")
    finally:
        await worker.close()


# --- the single worker on SQLite ---------------------------------------------------------


@async_test
async def test_sqlite_single_worker_grants_everything(tmp_path: Path) -> None:
    store = SQLiteCallStore(str(tmp_path / "calls.sqlite3"))
    leases = open_leases("sqlite:///x", store, StoreOptions(), ttl=3)
    try:
        assert isinstance(leases, SingleWorkerLeases)
        assert await leases.acquire(CALL)
        assert await leases.fence(CALL, "dial 1-1") is Fence.GRANTED
        assert await leases.fence(CALL, "dial 1-1") is Fence.GRANTED  # replays are deliberate
        assert await leases.orphans() == []
    finally:
        await leases.close()
        store.close()


def test_a_second_worker_on_the_same_sqlite_file_is_refused(tmp_path: Path) -> None:
    database = str(tmp_path / "calls.sqlite3")
    first = SingleWorkerLeases(lock_path_for(database))
    try:
        with pytest.raises(SecondWorkerError, match="another AMI worker already uses"):
            SingleWorkerLeases(lock_path_for(database))
        # Another process, too (flock locks belong to the open file, not the process).
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from adapter.asterisk.leases import SingleWorkerLeases as L; "
                "L(sys.argv[1])",
                lock_path_for(database),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert probe.returncode != 0
        assert "SecondWorkerError" in probe.stderr
    finally:
        asyncio.run(first.close())
    # Once the first worker stops, a new one may start.
    asyncio.run(SingleWorkerLeases(lock_path_for(database)).close())


@async_test
async def test_calls_are_spread_among_the_workers_alive(
    redis_url: str, redis_options: StoreOptions
) -> None:
    workers = holders(redis_url, redis_options, 3)
    calls = [f"1700000000.{n}" for n in range(300)]
    try:
        for worker in workers:  # no membership known yet: anyone claims at once
            assert worker.claim_delay(CALL) == 0
        for worker in workers:
            await worker.renew()  # the heartbeat that makes it a member
        for worker in workers:
            await worker.renew()  # now each knows all three
        preferred = [[w for w in workers if w.claim_delay(c) == 0] for c in calls]
        assert all(len(p) == 1 for p in preferred)  # exactly one claims at once
        shares = Counter(p[0].owner for p in preferred)
        assert set(shares) == {w.owner for w in workers}
        assert min(shares.values()) > 50  # about 100 each
        assert await workers[1].acquire(CALL)
        assert workers[1].claim_delay(CALL) == 0  # held: no wait
    finally:
        await close_all(workers)


@async_test
async def test_a_clean_stop_hands_the_calls_over_at_once(
    redis_url: str, redis_options: StoreOptions
) -> None:
    leaving, staying = holders(redis_url, redis_options, 2, ttl=60)
    try:
        await leaving.renew()
        await staying.renew()
        assert await leaving.acquire(CALL)
        await leaving.close()
        assert await staying.orphans() == [CALL]  # not after the 60 s TTL: now
        await staying.renew()
        assert staying.claim_delay("1700000000.43") == 0  # the only member left
    finally:
        await staying.close()


def test_lease_ttl_is_read_and_bounded() -> None:
    env = {
        "AMI_HOST": "127.0.0.1",
        "AMI_USERNAME": "genagent-adapter",
        "AMI_SECRET": "worker-secret",
        "GA_API_ID": "id",
        "GA_API_SECRET": "secret",
    }
    assert WorkerSettings.from_env(env).lease_ttl == 3.0
    assert WorkerSettings.from_env({**env, "LEASE_TTL": "5"}).lease_ttl == 5.0
    for bad in ("0.5", "11", "soon"):
        with pytest.raises(ConfigError, match="LEASE_TTL"):
            WorkerSettings.from_env({**env, "LEASE_TTL": bad})
