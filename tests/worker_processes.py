"""AMI workers as real processes, ``python -m adapter asterisk`` configured by environment
as the Procfile's worker line runs them, sharing one fake Asterisk and one store."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec

import httpx
import redis

from adapter.sandbox import SandboxServer
from adapter.store import StoreOptions, open_store
from tests.asterisk_rig import Rig
from tests.conftest import API_ID, API_SECRET
from tests.fake_ami.pbx import Caller, DialOutcome, wait_until
from tests.fake_ami.server import FakeAsterisk

P = ParamSpec("P")
# A bound on a whole test with processes to start and stop, not a speed goal.
PROCESS_TEST_TIMEOUT = 120.0

# Short timeouts so a test never waits long; LEASE_TTL short so a takeover is quick.
LEASE_TTL_SECONDS = 2.0
WORKER_ENV = {
    "AMI_HOST": "127.0.0.1",
    "AMI_USERNAME": "genagent-adapter",  # asterisk_conf/manager_genagent.conf's user
    "AMI_SECRET": "worker-secret",
    "AMI_ACTION_TIMEOUT": "2",
    "AMI_HEARTBEAT": "1",
    "AMI_RECONNECT_MAX": "1",
    "GA_API_ID": API_ID,
    "GA_API_SECRET": API_SECRET,
    "GA_API_DEADLINE": "2",
    "GA_API_ATTEMPT_TIMEOUT": "1",
    "TRANSFER_CREATE_DEADLINE": "2",
    "CONTEXT_WAIT_SECONDS": "1",
    "CONTEXT_POLL_INTERVAL": "0.05",
    "LEASE_TTL": f"{LEASE_TTL_SECONDS:g}",
    "LOG_LEVEL": "INFO",
}


def process_test(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run a coroutine test in its own event loop, bounded by PROCESS_TEST_TIMEOUT."""

    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), PROCESS_TEST_TIMEOUT))

    return run


@dataclass
class WorkerProcess:
    """One ``python -m adapter asterisk`` process; its log lines go to ``log_path``."""

    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """kill -9: no clean-up, no lease released."""
        self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> int:
        """SIGTERM and wait; SIGKILL if it does not stop in time. Returns the exit status."""
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                self.process.kill()
        return await self.process.wait()


async def start_worker(env: dict[str, str], log_path: Path) -> WorkerProcess:
    """Start a worker with the test's environment (PYTHONPATH included) plus ``env``."""
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "adapter",
            "asterisk",
            env={**os.environ, **WORKER_ENV, **env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    return WorkerProcess(process, log_path)


async def wait_for_logins(fake: FakeAsterisk, count: int, timeout: float = 30.0) -> None:
    """Until ``count`` sessions have resynchronised (their CoreShowChannels was answered)."""

    def ready() -> bool | None:
        sessions = {a.session for a in fake.actions_named("CoreShowChannels")}
        return True if len(sessions) >= count else None

    await wait_until(ready, timeout, f"{count} workers logged in")


@dataclass
class SharedRig:
    """Several worker processes on one fake Asterisk, one sandbox and one Redis store."""

    rig: Rig
    workers: list[WorkerProcess]
    redis: redis.Redis
    prefix: str

    def owner(self, caller: Caller) -> WorkerProcess | None:
        """The worker whose lease the call is under (the token names the holder's pid)."""
        token = self.redis.get(f"{self.prefix}lease:{caller.uniqueid}")
        if not token:
            return None
        pid = int(str(token).rsplit(":", 3)[1])
        return next((w for w in self.workers if w.pid == pid), None)


@contextlib.asynccontextmanager
async def shared_rig(
    sandbox: SandboxServer, tmp_path: Path, redis_url: str, options: StoreOptions, count: int = 2
) -> AsyncIterator[SharedRig]:
    """``count`` workers logged in to the fake and ready; everything stopped on exit."""
    holder: list[Rig] = []

    async def dial_handler(caller: Caller, number: str) -> DialOutcome:
        return await holder[0].play_agent(caller, number)

    fake = await FakeAsterisk(dial_handler=dial_handler, dial_timeout=0.05).start()
    store = open_store(redis_url, options)
    http = httpx.AsyncClient(timeout=10)
    rig = Rig(fake, sandbox, store, None, http)
    holder.append(rig)
    env = {
        "AMI_PORT": str(fake.port),
        "GA_API_BASE_URL": sandbox.url,
        "STORE_URL": redis_url,
        "STORE_KEY_PREFIX": options.key_prefix,
    }
    workers: list[WorkerProcess] = []
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        for n in range(count):
            workers.append(await start_worker(env, tmp_path / f"worker-{n}.log"))
        await wait_for_logins(fake, count)
        # Each worker is a member (calls are spread among the members), as in production.
        members = f"{options.key_prefix}workers"
        await wait_until(lambda: client.zcard(members) >= count or None, 30, "members")
        # Each worker learns the others at its next lease renewal (every LEASE_TTL/3 s);
        # until then a worker that started first takes every call it sees.
        await asyncio.sleep(LEASE_TTL_SECONDS / 3 + 0.5)
        yield SharedRig(rig, workers, client, options.key_prefix)
    finally:
        for worker in workers:
            await worker.stop()
        for task in rig.hang_ups:
            task.cancel()
        client.close()
        await http.aclose()
        await fake.stop()
        store.close()
