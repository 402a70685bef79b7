"""The worker with and without the shipped manager.conf event filter: the same calls, the
same actions. Without it the fake sends every call event a real Asterisk sends the user
(about 50 a call here: Local caller, Local dial), and the worker skips the ones it does
not handle without parsing them."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.asterisk.connection import OneShotManager
from adapter.demo.simulator import AgentLeg
from adapter.flow import Outcome
from adapter.sandbox import SandboxServer
from tests.asterisk_rig import AGENT, Rig, running_rig
from tests.fake_ami.harness import async_test
from tests.fake_ami.pbx import Caller
from tests.fake_ami.server import Account, default_accounts

IVR = {"GA_TASK": "billing", "GA_IV_accountNumber": "3434"}


def local_caller(rig: Rig, *legs: AgentLeg) -> Caller:
    """A caller as recorded: the ``;2`` half of a Local channel, dialing Local legs."""
    rig.fake.pbx.globals.update(GA_DIAL_PREFIX="Local/", GA_DIAL_SUFFIX="@fake-pstn")
    caller = rig.fake.new_caller(IVR, local=True)
    rig.legs[caller.uniqueid] = list(legs)
    return caller


def accounts(*, filtered: bool) -> dict[str, Account]:
    """The shipped AMI user, or the same included without its eventfilter lines."""
    users = default_accounts()
    assert users["genagent-adapter"].filters  # the shipped file has them
    if not filtered:
        users["genagent-adapter"] = users["genagent-adapter"].unfiltered()
    return users


def skipped_events(rig: Rig) -> int:
    assert rig.worker.session is not None
    manager = rig.worker.session._manager
    assert isinstance(manager, OneShotManager)
    return int(manager.protocol.skipped)


@pytest.mark.parametrize("filtered", [True, False], ids=["filtered", "unfiltered"])
@async_test
async def test_same_actions_with_or_without_the_filter(
    sandbox: SandboxServer, tmp_path: Path, filtered: bool
) -> None:
    async with running_rig(sandbox, tmp_path, accounts=accounts(filtered=filtered)) as rig:
        callers = [local_caller(rig, AgentLeg(output=AGENT)) for _ in range(3)]
        for caller in callers:
            caller.hand_off()
        for caller in callers:
            await caller.wait_until("genagent-agent", timeout=8)
        for caller in callers:
            await caller.hang_up()
            await caller.wait_until(None)
        for caller in callers:
            assert caller.variables["GA_TRANSFER_TYPE"] == "AGENT"
            assert (await rig.record(caller, "routed")).outcome is Outcome.AGENT_RETURNED
            redirects = [
                a.get("Context")
                for a in rig.fake.actions_named("Redirect")
                if a.get("Channel") in (caller.name, caller.uniqueid)
            ]
            assert redirects == ["genagent-dial", "genagent-agent"]
        # With the filter only FullyBooted (at login) reaches the worker unhandled; without
        # it, some 40 events a call, skipped before any parse.
        assert skipped_events(rig) == 1 if filtered else skipped_events(rig) > 3 * 30


@async_test
async def test_unfiltered_worker_still_sees_the_callers_hang_up(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with running_rig(sandbox, tmp_path, accounts=accounts(filtered=False)) as rig:
        caller = local_caller(rig, AgentLeg(ending="caller-hangs-up"))
        caller.hand_off()
        record = await rig.record(caller, "ended")
        assert record.outcome is Outcome.CALLER_HUNG_UP
        assert skipped_events(rig) > 20
