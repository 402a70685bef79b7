"""The history of a call played through the AMI worker: its front is Asterisk's, its story
is masked like a Twilio call's."""

from __future__ import annotations

import json
import time
from pathlib import Path

from adapter.demo.simulator import AgentLeg
from adapter.history import CallQuery, list_calls, show_call
from adapter.history.render import story_lines
from adapter.sandbox import SandboxServer
from tests.asterisk_rig import AGENT, running_rig
from tests.fake_ami.harness import async_test

IVR = {"GA_TASK": "billing", "GA_IV_accountNumber": "3434", "GA_IV_name": "Doe, John"}


@async_test
async def test_an_asterisk_call_reads_as_one_in_the_history(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with running_rig(sandbox, tmp_path) as rig:
        caller = rig.caller(AgentLeg(answer="no-answer"), AgentLeg(output=AGENT), **IVR)
        caller.hand_off()
        await caller.wait_until("genagent-agent", timeout=10)
        await rig.record(caller, "routed")
        history = list_calls(rig.store, CallQuery(), now=time.time())
        story = show_call(rig.store, caller.uniqueid, now=time.time())

    (call,) = history["calls"]
    assert call["callId"] == caller.uniqueid
    assert (call["front"], call["outcome"], call["route"], call["attempts"]) == (
        "asterisk",
        "agent-returned",
        "agent",
        2,
    )
    assert story is not None
    attempts = story["handoffs"][0]["attempts"]
    assert [a["outcome"] for a in attempts] == ["no-answer", "agent-returned"]
    assert story["inputVariables"] == {"accountNumber": "***(4)", "name": "***(9)"}
    text = json.dumps(story) + "\n".join(story_lines(story))
    for secret in ("3434", "Doe, John", "dispute", "999555"):
        assert secret not in text
    assert f"{caller.uniqueid}-2" in text
