"""Whole calls through the AMI worker: the fake Asterisk runs the shipped dialplan over
real TCP to panoramisk, the sandbox plays GenerativeAgent."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from adapter.asterisk import StartupError
from adapter.asterisk.worker import dial_result
from adapter.demo.simulator import AgentLeg
from adapter.flow import DialResult, Outcome
from adapter.sandbox import SandboxServer
from tests.asterisk_rig import AGENT, SYSTEM, running_rig
from tests.fake_ami.dialplan import CORE_CONF, Dialplan
from tests.fake_ami.harness import async_test
from tests.fake_ami.pbx import TEST_IVR_CONF, wait_until

IVR = {"GA_TASK": "billing", "GA_IV_accountNumber": "3434", "GA_IV_name": "Doe, John"}


@async_test
async def test_agent_route_end_to_end(sandbox: SandboxServer, tmp_path: Path) -> None:
    async with running_rig(sandbox, tmp_path) as rig:
        caller = rig.caller(AgentLeg(output=AGENT), **IVR)
        caller.hand_off()
        await caller.wait_until("genagent-agent", timeout=5)

        [transfer] = await rig.transfers()
        assert transfer["id"] == f"{caller.uniqueid}-1"
        assert transfer["externalConversationId"] == caller.channel.linkedid
        # Read with Getvar/Status, so the comma survives (a UserEvent body would cut it).
        assert transfer["inputContext"] == {
            "taskName": "billing",
            "inputVariables": {"accountNumber": "3434", "name": "Doe, John"},
        }
        variables = caller.variables
        assert variables["GA_TRANSFER_TYPE"] == "AGENT"
        assert variables["GA_CURRENT_TASK"] == "billing"
        assert variables["GA_TV_reason"] == "dispute"
        assert variables["GA_RV_account_id"] == "42"
        assert variables["GA_TRANSFER_ID"] == f"{caller.uniqueid}-1"
        redirects = [a.get("Context") for a in rig.fake.actions_named("Redirect")]
        assert redirects == ["genagent-dial", "genagent-agent"]
        record = await rig.record(caller, "routed")
        assert record.outcome is Outcome.AGENT_RETURNED


@async_test
async def test_long_handoff_variables_arrive_as_getvar_would_read_them(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # Asterisk answers at most 1,023 bytes of a variable: whole characters are kept here.
    variables = {"GA_TASK": "billing", "GA_IV_ascii": "a" * 2000, "GA_IV_accents": "é" * 1000}
    async with running_rig(sandbox, tmp_path) as rig:
        caller = rig.caller(AgentLeg(output=AGENT), **variables)
        caller.hand_off()
        await caller.wait_until("genagent-agent", timeout=5)
        [transfer] = await rig.transfers()
    sent = transfer["inputContext"]["inputVariables"]
    assert sent["ascii"] == "a" * 1023
    assert sent["accents"] == "é" * 511  # 1,022 bytes: the 512th would end past byte 1,023


@async_test
async def test_system_route(sandbox: SandboxServer, tmp_path: Path) -> None:
    async with running_rig(sandbox, tmp_path) as rig:
        caller = rig.caller(AgentLeg(output=SYSTEM), GA_TASK="balance")
        caller.hand_off()
        await caller.wait_until("genagent-system", timeout=5)
        assert caller.variables["GA_TRANSFER_TYPE"] == "SYSTEM"
        assert caller.variables["GA_TV_b"] == "1"


@async_test
async def test_caller_hang_up_while_talking_is_recorded(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with running_rig(sandbox, tmp_path) as rig:
        caller = rig.caller(AgentLeg(ending="caller-hangs-up"))
        caller.hand_off()
        await caller.wait_until(None, timeout=5)
        record = await rig.record(caller, "ended")
        assert record.outcome is Outcome.CALLER_HUNG_UP
        assert record.attempts[0].outcome is Outcome.CALLER_HUNG_UP
        await asyncio.sleep(0.1)
        assert [a.get("Context") for a in rig.fake.actions_named("Redirect")] == ["genagent-dial"]
        assert len(await rig.transfers()) == 1
        assert caller.uniqueid not in rig.worker.calls


@async_test
async def test_caller_gone_before_the_worker_acts(sandbox: SandboxServer, tmp_path: Path) -> None:
    async with running_rig(sandbox, tmp_path) as rig:
        caller = rig.caller()
        caller.hand_off()
        await caller.hang_up()
        record = await rig.record(caller, "ended")
        assert record.outcome is Outcome.CALLER_HUNG_UP
        await asyncio.sleep(0.2)
        assert rig.fake.actions_named("Redirect") == []


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [("no-answer", Outcome.NO_ANSWER), ("busy", Outcome.BUSY), ("failed", Outcome.FAILED)],
)
@async_test
async def test_unreached_number_is_retried_with_a_new_transfer(
    sandbox: SandboxServer, tmp_path: Path, answer: str, outcome: Outcome
) -> None:
    async with running_rig(sandbox, tmp_path) as rig:
        caller = rig.caller(AgentLeg(answer=answer), AgentLeg(output=AGENT))  # type: ignore[arg-type]
        caller.hand_off()
        await caller.wait_until("genagent-agent", timeout=5)
        transfers = await rig.transfers()
        assert [t["id"] for t in transfers] == [f"{caller.uniqueid}-1", f"{caller.uniqueid}-2"]
        assert len({t["externalConversationId"] for t in transfers}) == 1
        numbers = [
            a.get("Value")
            for a in rig.fake.actions_named("Setvar")
            if a.get("Variable") == "GA_TRANSFER_NUMBER"
        ]
        assert len(numbers) == 2
        assert numbers[0] != numbers[1]
        assert caller.variables["GA_TRANSFER_ID"] == f"{caller.uniqueid}-2"
        record = await rig.record(caller, "routed")
        assert [a.outcome for a in record.attempts] == [outcome, Outcome.AGENT_RETURNED]


@async_test
async def test_retries_are_bounded_then_fallback(sandbox: SandboxServer, tmp_path: Path) -> None:
    async with running_rig(sandbox, tmp_path) as rig:
        caller = rig.caller(*(AgentLeg(answer="busy") for _ in range(5)))
        caller.hand_off()
        await caller.wait_until("genagent-fallback", timeout=5)
        assert len(await rig.transfers()) == 3
        assert "3 attempts" in caller.variables["GA_FALLBACK_REASON"]
        record = await rig.record(caller, "routed")
        assert record.outcome is Outcome.FALLBACK


@async_test
async def test_api_down_sends_the_caller_to_fallback_at_once(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with running_rig(sandbox, tmp_path) as rig:
        await rig.http.post(
            f"{sandbox.url}/sandbox/faults", json={"fail": {"status": 503, "count": 100}}
        )
        caller = rig.caller(**IVR)
        caller.hand_off()
        # Well before the dialplan's own 30 s safety timeout.
        await caller.wait_until("genagent-fallback", timeout=4)
        assert caller.variables["GA_FALLBACK_REASON"].startswith("ServiceUnavailableError")
        record = await rig.record(caller, "routed")
        assert record.attempts[0].outcome is Outcome.API_ERROR


@async_test
async def test_many_calls_at_once(sandbox: SandboxServer, tmp_path: Path) -> None:
    async with running_rig(sandbox, tmp_path) as rig:
        callers = [rig.caller(AgentLeg(output=AGENT if n % 2 else SYSTEM)) for n in range(30)]
        for caller in callers:
            caller.hand_off()
        await asyncio.gather(
            *(
                c.wait_until("genagent-agent" if n % 2 else "genagent-system", timeout=10)
                for n, c in enumerate(callers)
            )
        )
        assert len(await rig.transfers()) == 30
        # The last Redirects' answers may still be on their way; then no call is left.
        await wait_until(lambda: not rig.worker.calls or None, 5, "every call to finish")


@async_test
async def test_reconnect_mid_call_picks_up_the_missed_return(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with running_rig(sandbox, tmp_path) as rig:
        caller = rig.caller(AgentLeg(output=AGENT))
        gate = rig.hold_agent()  # the connection drops while GenerativeAgent talks
        caller.hand_off()
        await rig.fake.wait_for_action("Redirect", Context="genagent-dial")
        rig.fake.drop_connections()
        gate.set()  # GenerativeAgentReturned is emitted while nobody listens
        await caller.wait_until("genagent-agent", timeout=8)
        logins = rig.fake.actions_named("Login")
        assert len(logins) >= 2
        getvars = [a.get("Variable") for a in rig.fake.actions_named("Getvar")]
        assert "DIALSTATUS" in getvars


@async_test
async def test_asterisk_restart_ends_the_calls_it_hung_up(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with running_rig(sandbox, tmp_path) as rig:
        caller = rig.caller(AgentLeg(output=AGENT))
        gate = rig.hold_agent()
        caller.hand_off()
        await rig.fake.wait_for_action("Redirect", Context="genagent-dial")
        await rig.fake.restart(down_for=0.3)
        record = await rig.record(caller, "ended")
        assert record.outcome is Outcome.CALLER_HUNG_UP
        await asyncio.wait_for(rig.worker.ready.wait(), 5)
        gate.set()
        # Calls after the restart work as before.
        fresh = rig.caller(AgentLeg(output=SYSTEM))
        fresh.hand_off()
        await fresh.wait_until("genagent-system", timeout=5)


@async_test
async def test_half_open_connection_is_detected(sandbox: SandboxServer, tmp_path: Path) -> None:
    async with running_rig(sandbox, tmp_path) as rig:
        rig.fake.stalled_actions.add("ping")  # answers nothing more: a half-open link
        await asyncio.sleep(0.2)
        await rig.fake.wait_for_action("Ping", timeout=3)
        await asyncio.wait_for(_logins(rig, 2), 8)
        rig.fake.stalled_actions.clear()


async def _logins(rig, count: int) -> None:  # type: ignore[no-untyped-def]
    while len(rig.fake.actions_named("Login")) < count:
        await asyncio.sleep(0.05)


@async_test
async def test_missing_route_context_refuses_to_start(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    core_only = Dialplan.load([CORE_CONF], TEST_IVR_CONF)
    async with running_rig(sandbox, tmp_path, start=False, dialplan=core_only) as rig:
        with pytest.raises(
            StartupError, match="genagent-agent, genagent-system, genagent-fallback"
        ):
            await asyncio.wait_for(rig.worker.run(), 5)


@async_test
async def test_wrong_secret_keeps_retrying_and_never_crashes(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with running_rig(sandbox, tmp_path, start=False) as rig:
        rig.fake.accounts["genagent-adapter"] = rig.fake.accounts["adapter"]  # other secret
        running = asyncio.ensure_future(rig.worker.run())
        await asyncio.wait_for(_logins(rig, 2), 8)
        rig.worker.stop()
        await asyncio.wait_for(running, 5)
    text = caplog.text
    assert "refused" in text
    assert "worker-secret" not in text


def test_dial_statuses() -> None:
    assert dial_result("ANSWER") is DialResult.AGENT_DISCONNECTED
    assert dial_result("noanswer") is DialResult.NO_ANSWER
    assert dial_result("BUSY") is DialResult.BUSY
    assert dial_result("CANCEL") is DialResult.CALLER_HUNG_UP
    for status in ("CONGESTION", "CHANUNAVAIL", "INVALIDARGS", "", "SOMETHING-NEW"):
        assert dial_result(status) is DialResult.FAILED


@async_test
async def test_a_failing_flow_sends_the_caller_to_fallback_at_once(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with running_rig(sandbox, tmp_path) as rig:
        assert rig.worker.flow is not None

        async def broken(call: object) -> None:
            raise RuntimeError("the store is on fire")

        rig.worker.flow.start = broken  # type: ignore[method-assign, assignment]
        caller = rig.caller(**IVR)
        caller.hand_off()
        await caller.wait_until("genagent-fallback", timeout=3)
        assert caller.variables["GA_FALLBACK_REASON"] == "internal error"
