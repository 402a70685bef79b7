"""Hostile outputContexts through the AMI worker: values exact where Asterisk carries them,
never a broken AMI message, and the caller always redirected."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from adapter.asterisk import messages
from adapter.asterisk.framing import SETVAR_VALUE_MAX
from adapter.demo.simulator import AgentLeg
from adapter.sandbox import SandboxServer
from tests.asterisk_rig import AGENT, running_rig
from tests.fake_ami.codec import Message, decode, encode
from tests.fake_ami.harness import async_test

LONG = "é" * 1200  # 2,400 bytes of UTF-8: more than one AMI line holds
HOSTILE = {
    "transferType": "AGENT",
    "currentTaskName": "bill\x00ing",
    "transferVariables": {
        "carried": "a,b;c \"quoted\" 'single' Zoë 😀 | ^ ( ) = %",
        "breaks": "line1\r\nline2\nend",
        "control": "x\x01y\x1bz",
        "long": LONG,
        "number": 12.5,
        "bad name": "dropped",
    },
    "referenceVariables": {"account-id": "42"},
}


@async_test
async def test_values_stay_exact_where_asterisk_can_carry_them(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_rig(sandbox, tmp_path) as rig:
        caller = rig.caller(AgentLeg(output=HOSTILE), GA_TASK="billing")
        with caplog.at_level(logging.WARNING):
            caller.hand_off()
            await caller.wait_until("genagent-agent", timeout=5)
        variables = caller.variables
        assert variables["GA_CURRENT_TASK"] == "billing"
        assert variables["GA_TV_carried"] == HOSTILE["transferVariables"]["carried"]
        assert variables["GA_TV_breaks"] == "line1  line2 end"
        assert variables["GA_TV_control"] == "xyz"
        assert variables["GA_TV_number"] == "12.5"
        assert variables["GA_RV_account_id"] == "42"
        assert not any(name.startswith("GA_TV_bad") for name in variables)
        # Cut at a character boundary to fit its line, rather than refused by Asterisk.
        assert variables["GA_TV_long"] == "é" * (SETVAR_VALUE_MAX // 2)
        refused = [a for a in rig.fake.actions_named("Setvar") if a.get("Response") == "Error"]
        assert refused == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("GA_TV_long" in line and "cut" in line for line in warnings)
    assert not any("é" in line or "dropped" in line for line in warnings)


def test_the_fake_refuses_a_line_over_1024_bytes_as_asterisk_does() -> None:
    fits = encode([("Action", "Setvar"), ("Value", "a" * 1015)])
    too_long = encode([("Action", "Setvar"), ("Value", "a" * 1016)])
    assert not decode(fits).line_too_long
    assert decode(too_long).line_too_long
    assert isinstance(decode(too_long), Message)


@async_test
async def test_a_refused_setvar_does_not_strand_the_caller(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = messages.setvar_action

    def overlong_reason(channel: str, variable: str, value: str) -> tuple[dict[str, str], bool]:
        action, cut = real(channel, variable, value)
        if variable == "GA_TV_reason":  # as if the line limit were misjudged
            action["Value"] = "x" * 2000
        return action, cut

    monkeypatch.setattr(messages, "setvar_action", overlong_reason)
    async with running_rig(sandbox, tmp_path) as rig:
        caller = rig.caller(AgentLeg(output=AGENT), GA_TASK="billing")
        caller.hand_off()
        await caller.wait_until("genagent-agent", timeout=5)
        assert "GA_TV_reason" not in caller.variables
        assert caller.variables["GA_TRANSFER_TYPE"] == "AGENT"
