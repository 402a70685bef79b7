"""Asterisk unreachable for a long time: one connection attempt at a time, exactly one
session when it returns, nothing left behind. Real TCP to the fake AMI server."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from adapter.sandbox import SandboxServer
from tests.asterisk_rig import Rig, agent_call, running_rig
from tests.fake_ami.pbx import wait_until
from tests.process_probe import ConnectionAttempts, open_sockets, sockets_to

OUTAGE = 60.0
MIDPOINT = 30.0
# panoramisk's own reconnect timers fire every 2 s: a leftover loop shows up within this.
LATECOMER_WINDOW = 5.0


def logins(rig: Rig) -> int:
    return len(rig.fake.actions_named("Login"))


async def quiet_tasks(baseline: int | None = None) -> int:
    """The number of asyncio tasks once per-call work has finished."""
    await asyncio.sleep(0.5)
    if baseline is not None:
        await wait_until(
            lambda: len(asyncio.all_tasks()) <= baseline or None, 10, "tasks to finish"
        )
    return len(asyncio.all_tasks())


async def outage(sandbox: SandboxServer, tmp_path: Path) -> None:
    async with running_rig(sandbox, tmp_path) as rig:
        fake = rig.fake
        await agent_call(rig)  # warm: pools and connections as in steady state
        tasks_before, sockets_before = await quiet_tasks(), open_sockets()
        accepted_before, logins_before = fake.connections, logins(rig)
        assert sockets_to(fake.port) == 1
        attempts = ConnectionAttempts(asyncio.get_running_loop(), lambda: fake.port)

        await fake.go_away()
        await wait_until(lambda: not rig.worker.ready.is_set() or None, 10, "the worker to notice")
        await asyncio.sleep(MIDPOINT)
        # The 30 s mark: many attempts were made, one at a time, and none holds a socket.
        assert attempts.started >= 10
        assert attempts.most_in_flight == 1
        assert sockets_to(fake.port) == 0
        assert len(asyncio.all_tasks()) <= tasks_before
        await asyncio.sleep(OUTAGE - MIDPOINT)
        tried = attempts.started
        assert attempts.most_in_flight == 1

        await fake.start()  # Asterisk is back on the same port
        await asyncio.wait_for(rig.worker.ready.wait(), 30)
        await asyncio.sleep(LATECOMER_WINDOW)
        assert fake.connections - accepted_before == 1
        assert logins(rig) - logins_before == 1
        assert len(fake.sessions) == 1
        assert sockets_to(fake.port) == 1
        assert attempts.started - tried <= 2  # the one that got in, perhaps one just before
        assert attempts.most_in_flight == 1

        await agent_call(rig)  # calls are handled as before
        assert await quiet_tasks(tasks_before) == tasks_before
        await wait_until(lambda: open_sockets() <= sockets_before or None, 10, "sockets closed")
        print(
            f"\noutage {OUTAGE:.0f} s: {tried} attempts, at most {attempts.most_in_flight} "
            f"in flight, {fake.connections - accepted_before} connection and "
            f"{logins(rig) - logins_before} login afterwards; tasks {tasks_before} -> "
            f"{len(asyncio.all_tasks())}, sockets {sockets_before} -> {open_sockets()}"
        )


@pytest.mark.timeout(OUTAGE + 90)
def test_a_long_outage_ends_in_exactly_one_session(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    asyncio.run(asyncio.wait_for(outage(sandbox, tmp_path), OUTAGE + 80))
    panoramisk = [r.getMessage() for r in caplog.records if r.name.startswith("panoramisk")]
    assert not [line for line in panoramisk if "connect" in line.lower()], panoramisk[:5]


async def broken_then_restarted(sandbox: SandboxServer, tmp_path: Path) -> None:
    async with running_rig(sandbox, tmp_path) as rig:
        fake = rig.fake
        for breaks in (fake.drop_connections, fake.restart):  # a reset, then a Shutdown
            accepted = fake.connections
            result = breaks()
            if asyncio.iscoroutine(result):
                await result

            def new_session(accepted: int = accepted) -> bool | None:
                return (fake.connections > accepted and rig.worker.ready.is_set()) or None

            await wait_until(new_session, 15, "a new session")
            await asyncio.sleep(LATECOMER_WINDOW)
            assert fake.connections - accepted == 1
            assert len(fake.sessions) == 1
            assert sockets_to(fake.port) == 1
        await agent_call(rig)


@pytest.mark.timeout(90)
def test_a_lost_connection_is_replaced_by_exactly_one(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    asyncio.run(asyncio.wait_for(broken_then_restarted(sandbox, tmp_path), 80))
