"""Several AMI workers on one Asterisk: real ``python -m adapter asterisk`` processes, the
fake Asterisk over TCP (every event to every connection, as Asterisk does), the sandbox
and one real Redis. Each decision is acted on by one worker, once; a worker killed with
SIGKILL mid-call leaves its calls to the other well before the dialplan's 30 s timeout."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import redis

from adapter.demo.simulator import AgentLeg
from adapter.flow import Outcome
from adapter.sandbox import SandboxServer
from adapter.store import StoreOptions
from tests.asterisk_rig import AGENT, SYSTEM, Rig
from tests.fake_ami.harness import Client, async_test
from tests.fake_ami.pbx import Caller
from tests.fake_ami.server import FakeAsterisk
from tests.worker_processes import process_test, shared_rig, start_worker, wait_for_logins

# What each kind of caller goes through: the scripted legs, the Redirects it must get
# (each exactly once, in this order), and the context it ends in (None: it hangs up).
SCRIPTS: list[tuple[tuple[AgentLeg, ...], list[str], str | None]] = [
    ((AgentLeg(output=AGENT),), ["genagent-dial", "genagent-agent"], "genagent-agent"),
    ((AgentLeg(output=SYSTEM),), ["genagent-dial", "genagent-system"], "genagent-system"),
    (
        (AgentLeg(answer="no-answer"), AgentLeg(output=AGENT)),
        ["genagent-dial", "genagent-dial", "genagent-agent"],
        "genagent-agent",
    ),
    (
        (AgentLeg(answer="busy"), AgentLeg(answer="failed"), AgentLeg(output=SYSTEM)),
        ["genagent-dial", "genagent-dial", "genagent-dial", "genagent-system"],
        "genagent-system",
    ),
    ((AgentLeg(ending="caller-hangs-up"),), ["genagent-dial"], None),
]


def redirects(fake: FakeAsterisk, caller: Caller) -> list[str]:
    return [
        a.get("Context")
        for a in fake.actions_named("Redirect")
        if a.get("Channel") == caller.uniqueid
    ]


def setvars(fake: FakeAsterisk, caller: Caller) -> Counter[str]:
    """How many times each variable was set on the caller's channel."""
    return Counter(
        a.get("Variable")
        for a in fake.actions_named("Setvar")
        if a.get("Channel") == caller.uniqueid
    )


@async_test
async def test_the_fake_sends_every_event_to_every_logged_in_session() -> None:
    async with (
        FakeAsterisk() as fake,
        Client(fake, "genagent-adapter", "worker-secret") as first,
        Client(fake, "genagent-adapter", "worker-secret") as second,
    ):
        caller = fake.new_caller({"GA_TASK": "billing"})
        caller.hand_off()
        for client in (first, second):
            event = await client.wait_for_event("GenerativeAgentTransfer", Uniqueid=caller.uniqueid)
            assert event.get("Channel") == caller.name
        await caller.hang_up()
        for client in (first, second):
            await client.wait_for_event("Hangup", Uniqueid=caller.uniqueid)


@process_test
async def test_two_workers_act_once_per_decision_on_many_concurrent_calls(
    sandbox: SandboxServer, tmp_path: Path, redis_url: str, redis_options: StoreOptions
) -> None:
    async with shared_rig(sandbox, tmp_path, redis_url, redis_options) as shared:
        rig, fake = shared.rig, shared.rig.fake
        calls: list[tuple[Caller, list[str], str | None]] = []
        for n in range(40):
            legs, expected, end = SCRIPTS[n % len(SCRIPTS)]
            calls.append((rig.caller(*legs, GA_TASK="billing"), expected, end))
        for caller, _, _ in calls:
            caller.hand_off()
        await asyncio.gather(*(caller.wait_until(end, timeout=30) for caller, _, end in calls))
        await _records_settled(rig, calls)

        for caller, expected, end in calls:
            assert redirects(fake, caller) == expected, caller.name
            dials = expected.count("genagent-dial")
            counts = setvars(fake, caller)
            assert counts["GA_TRANSFER_NUMBER"] == dials, caller.name
            assert counts["GA_TRANSFER_TYPE"] == (0 if end is None else 1), caller.name
            # One worker carried out every decision of the call (no takeover here).
            sessions = {
                a.session
                for a in fake.actions_named("Redirect")
                if a.get("Channel") == caller.uniqueid
            }
            assert len(sessions) == 1, caller.name
        # Both workers took calls: the calls are spread between them.
        acting = {a.session for a in fake.actions_named("Redirect")}
        assert len(acting) == 2
        # Each transfer was requested once, by whichever worker held the call.
        ids = [t["id"] for t in await rig.transfers()]
        assert len(ids) == len(set(ids)) == sum(e.count("genagent-dial") for _, e, _ in calls)
        # No lease is left behind once the calls are over.
        await _no_leases_left(shared.redis, redis_options.key_prefix)


async def _records_settled(rig: Rig, calls: list[tuple[Caller, list[str], str | None]]) -> None:
    for caller, _, end in calls:
        record = await rig.record(caller, "routed" if end else "ended")
        if end is None:
            assert record.outcome is Outcome.CALLER_HUNG_UP


async def _no_leases_left(client: redis.Redis, prefix: str) -> None:
    """Every lease released and the registry empty (waits for the last hang-ups)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while client.zcard(f"{prefix}leases") or list(client.scan_iter(f"{prefix}lease:*")):
        assert loop.time() < deadline, "leases were left behind"
        await asyncio.sleep(0.05)


@process_test
async def test_a_worker_killed_mid_call_leaves_its_calls_to_the_other(
    sandbox: SandboxServer, tmp_path: Path, redis_url: str, redis_options: StoreOptions
) -> None:
    async with shared_rig(sandbox, tmp_path, redis_url, redis_options) as shared:
        rig, fake = shared.rig, shared.rig.fake
        agent_answers = rig.hold_agent()  # every dial rings until the test says
        callers = [rig.caller(AgentLeg(output=AGENT)) for _ in range(8)]
        for caller in callers:
            caller.hand_off()
        await asyncio.gather(*(c.wait_until("genagent-dial", timeout=20) for c in callers))
        owners = {c.uniqueid: shared.owner(c) for c in callers}
        assert None not in owners.values()
        # Kill the worker holding more calls (at least 4 of the 8), mid-dial.
        victim = max(shared.workers, key=lambda w: sum(o is w for o in owners.values()))
        survivor = next(w for w in shared.workers if w is not victim)
        orphaned = [c for c in callers if owners[c.uniqueid] is victim]
        victim.kill()
        await victim.process.wait()

        # One of its callers hangs up while its worker is dead; for the others
        # GenerativeAgent hangs up, and their dial ends reach only the survivor.
        gone, *finishing = orphaned
        await gone.hang_up()
        agent_answers.set()
        # Well before the dialplan's 30 s return timeout (which would mean genagent-fallback).
        await asyncio.gather(
            *(c.wait_until("genagent-agent", timeout=10) for c in callers if c is not gone)
        )
        record = await rig.record(gone, "ended")
        assert record.outcome is Outcome.CALLER_HUNG_UP

        for caller in callers:
            if caller is gone:
                assert redirects(fake, caller) == ["genagent-dial"]
                continue
            assert redirects(fake, caller) == ["genagent-dial", "genagent-agent"], caller.name
            assert setvars(fake, caller)["GA_TRANSFER_NUMBER"] == 1
            assert setvars(fake, caller)["GA_TRANSFER_TYPE"] == 1
            assert (await rig.record(caller, "routed")).outcome is Outcome.AGENT_RETURNED
        assert finishing, "the victim held at least two calls"
        assert "adopting" in survivor.log()
        await _no_leases_left(shared.redis, redis_options.key_prefix)


@process_test
async def test_a_second_worker_on_the_same_sqlite_file_refuses_to_start(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with FakeAsterisk() as fake:
        env = {
            "AMI_PORT": str(fake.port),
            "GA_API_BASE_URL": sandbox.url,
            "STORE_URL": f"sqlite:///{tmp_path / 'calls.sqlite3'}",
        }
        first = await start_worker(env, tmp_path / "first.log")
        try:
            await wait_for_logins(fake, 1)
            second = await start_worker(env, tmp_path / "second.log")
            status = await asyncio.wait_for(second.process.wait(), 30)
            assert status != 0
            assert "another AMI worker already uses this SQLite call store" in second.log()
            assert "Redis STORE_URL" in second.log()
            assert first.process.returncode is None  # the first one runs on
            assert len({a.session for a in fake.actions_named("Login")}) == 1
        finally:
            assert await first.stop() == 0


@process_test
async def test_a_worker_stopped_cleanly_hands_its_calls_over(
    sandbox: SandboxServer, tmp_path: Path, redis_url: str, redis_options: StoreOptions
) -> None:
    async with shared_rig(sandbox, tmp_path, redis_url, redis_options) as shared:
        rig, fake = shared.rig, shared.rig.fake
        agent_answers = rig.hold_agent()
        callers = [rig.caller(AgentLeg(output=SYSTEM)) for _ in range(6)]
        for caller in callers:
            caller.hand_off()
        await asyncio.gather(*(c.wait_until("genagent-dial", timeout=20) for c in callers))
        owners = {c.uniqueid: shared.owner(c) for c in callers}
        leaving = max(shared.workers, key=lambda w: sum(o is w for o in owners.values()))
        assert await leaving.stop() == 0  # SIGTERM, as a deploy would
        agent_answers.set()
        await asyncio.gather(*(c.wait_until("genagent-system", timeout=10) for c in callers))
        for caller in callers:
            assert redirects(fake, caller) == ["genagent-dial", "genagent-system"], caller.name
            assert setvars(fake, caller)["GA_TRANSFER_TYPE"] == 1
        await _no_leases_left(shared.redis, redis_options.key_prefix)
