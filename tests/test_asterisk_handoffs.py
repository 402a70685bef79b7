"""Repeated hand-offs and a lagging context through the AMI worker, over real TCP."""

from __future__ import annotations

from pathlib import Path

from adapter.demo.simulator import AgentLeg
from adapter.flow import FlowPolicy, Outcome, RouteKind
from adapter.sandbox import SandboxServer
from tests.asterisk_rig import AGENT, SYSTEM, running_rig
from tests.fake_ami.harness import async_test

SYSTEM_WITH_VARIABLES = {
    "transferType": "SYSTEM",
    "currentTaskName": "balance",
    "transferVariables": {"b": "1", "only_first": "x"},
    "referenceVariables": {"ref_first": "y"},
}


@async_test
async def test_system_then_agent_on_one_channel(sandbox: SandboxServer, tmp_path: Path) -> None:
    async with running_rig(sandbox, tmp_path) as rig:
        caller = rig.caller(AgentLeg(output=SYSTEM_WITH_VARIABLES), AgentLeg(output=AGENT))
        caller.hand_off()
        await caller.wait_until("genagent-system", timeout=5)
        assert caller.variables["GA_TV_only_first"] == "x"

        # The admin's SYSTEM route context hands the caller over again.
        caller.set_variable("GA_TASK", "billing")
        caller.hand_off()
        await caller.wait_until("genagent-agent", timeout=5)

        transfers = {t["id"]: t for t in await rig.transfers()}
        uid = caller.uniqueid
        assert set(transfers) == {f"{uid}-1", f"{uid}-2"}
        conversations = {t["externalConversationId"] for t in transfers.values()}
        assert conversations == {caller.channel.linkedid}
        assert transfers[f"{uid}-2"]["inputContext"]["taskName"] == "billing"
        # The second route context sees only the second hand-off's variables.
        variables = caller.variables
        assert variables["GA_TRANSFER_TYPE"] == "AGENT"
        assert variables["GA_TV_reason"] == "dispute"
        assert variables.get("GA_TV_only_first", "") == ""
        assert variables.get("GA_RV_ref_first", "") == ""
        assert variables["GA_TRANSFER_ID"] == f"{uid}-2"
        redirects = [a.get("Context") for a in rig.fake.actions_named("Redirect")]
        assert redirects == ["genagent-dial", "genagent-system", "genagent-dial", "genagent-agent"]
        numbers = [
            a.get("Value")
            for a in rig.fake.actions_named("Setvar")
            if a.get("Variable") == "GA_TRANSFER_NUMBER"
        ]
        assert len(numbers) == 2
        assert numbers[0] != numbers[1]

        record = await rig.record(caller, "routed")
        assert [h.number for h in record.handoffs] == [1, 2]
        assert [h.token for h in record.handoffs] == ["seq-1", "seq-2"]
        kinds = [h.route.kind for h in record.handoffs if h.route]
        assert kinds == [RouteKind.SYSTEM, RouteKind.AGENT]
        assert [a.handoff for a in record.attempts] == [1, 2]


@async_test
async def test_a_lagging_context_holds_the_caller_then_routes(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    policy = FlowPolicy(create_deadline=1.5, context_wait=6.0, poll_interval=0.2, hold_after=0.3)
    async with running_rig(sandbox, tmp_path, flow=policy) as rig:
        await rig.http.post(f"{sandbox.url}/sandbox/faults", json={"completionLagMs": 2000})
        caller = rig.caller(AgentLeg(output=SYSTEM))
        caller.hand_off()
        await caller.wait_until("genagent-system", timeout=8)
        record = await rig.record(caller, "routed")
        assert record.attempts[0].outcome is Outcome.AGENT_RETURNED
        events = [event for _, event, _ in record.timeline]
        assert "holding" in events
        assert events.index("holding") < events.index("route")
