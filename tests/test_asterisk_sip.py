"""SIP hand-offs through the AMI worker end to end: the real worker, the fake Asterisk's
PJSIP flows (as recorded in asterisk-sip-traces/), the sandbox, a store. Each mode and
each return (BYE, REFER, INVITE), ASAPP busy or unreachable, the caller hanging up, bad
Refer-Tos, a Refer-To longer than one Getvar, repeated hand-offs."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from adapter.asterisk.worker import StartupError
from adapter.flow import FlowPolicy, Outcome, RouteKind
from adapter.genagent.models import ReturnTransferType
from adapter.sandbox import SandboxServer
from adapter.sip import SipTransferSettings, TransferMode
from tests.asterisk_rig import AGENT, SYSTEM, running_rig
from tests.asterisk_sip_rig import RETURN_URI, SipLeg
from tests.fake_ami.dialplan import CORE_CONF, ROUTES_CONF, Dialplan
from tests.fake_ami.harness import async_test
from tests.fake_ami.pbx import TEST_IVR_CONF, Caller, wait_until

ASAPP_URI = "sip:genagent@asapp.example.com"
BASE = FlowPolicy(create_deadline=1.5, context_wait=1.0, poll_interval=0.05)


def policy(mode: TransferMode, return_type: ReturnTransferType | None = None) -> FlowPolicy:
    sip = SipTransferSettings(
        mode=mode,
        asapp_uri=ASAPP_URI,
        asapp_domain="sip:asapp.example.com",
        return_uri=RETURN_URI,
        return_type=return_type,
    )
    return replace(BASE, sip=sip)


API, HEADERS = policy(TransferMode.SIP_API), policy(TransferMode.SIP_HEADERS)
IVR = {"GA_TASK": "call_routing", "GA_IV_accountNumber": "3434", "GA_IV_name": "Doe, John"}


def setvars(rig: Any, caller: Caller, name: str) -> list[str]:
    return [
        a.get("Value")
        for a in rig.fake.actions_named("Setvar")
        if a.get("Variable") == name and a.get("Channel") == caller.uniqueid
    ]


@async_test
async def test_sip_api_bye_fetches_the_context_and_routes(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with running_rig(sandbox, tmp_path, flow=API) as rig:
        caller = rig.sip_caller(SipLeg(ending="bye", output=AGENT), **IVR)
        caller.hand_off()
        await caller.wait_until("genagent-agent", timeout=10)
        (invite,) = caller.invites
        assert invite.uri == ASAPP_URI
        assert invite.headers == [("X-ASAPP-CallTransferId", f"{caller.uniqueid}-1")]
        assert caller.variables["GA_TRANSFER_TYPE"] == "AGENT"
        assert caller.variables["GA_TV_reason"] == "dispute"
        (transfer,) = await rig.transfers()
        assert transfer["type"] == "SIP"
        assert transfer["inputContext"]["inputVariables"]["name"] == "Doe, John"
        record = await rig.record(caller, "routed")
        assert record.attempts[0].returned_by is not None
        assert record.attempts[0].returned_by.value == "BYE"


@async_test
async def test_sip_headers_refer_routes_from_the_refer_to_parameters(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    output = {
        "transferType": "SYSTEM",
        "transferVariables": {"next_action": "schedule callback", "city": "Zoë & co"},
        "referenceVariables": {"account_balance": "1250.00"},
    }
    async with running_rig(sandbox, tmp_path, flow=HEADERS) as rig:
        caller = rig.sip_caller(SipLeg(ending="refer", output=output), **IVR)
        caller.hand_off()
        await caller.wait_until("genagent-system", timeout=10)
        headers = dict(caller.invites[0].headers)
        assert headers["X-GA-taskName"] == "call_routing"
        assert headers["X-GA-iv-name"] == "Doe, John"
        assert headers["X-GA-extConversationId"] == caller.channel.linkedid
        assert rig.sip.refer_statuses == [200]
        variables = caller.variables
        assert variables["GA_TRANSFER_TYPE"] == "SYSTEM"
        assert variables["GA_TV_next_action"] == "schedule callback"
        assert variables["GA_TV_city"] == "Zoë & co"
        assert variables["GA_RV_account_balance"] == "1250.00"
        assert await rig.transfers() == []  # no API call in sip-headers mode
        redirects = [a.get("Context") for a in rig.fake.actions_named("Redirect")]
        assert redirects == ["genagent-sip-dial", "genagent-system"]


@async_test
async def test_sip_api_refer_reads_the_context_after_the_refer(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with running_rig(
        sandbox, tmp_path, flow=policy(TransferMode.SIP_API, ReturnTransferType.REFER)
    ) as rig:
        caller = rig.sip_caller(SipLeg(ending="refer", output=AGENT), **IVR)
        caller.hand_off()
        await caller.wait_until("genagent-agent", timeout=10)
        (transfer,) = await rig.transfers()
        assert transfer["sip"]["returnURI"] == f"{RETURN_URI};transfer={caller.uniqueid}-1"
        assert caller.variables["GA_TV_reason"] == "dispute"
        record = await rig.record(caller, "routed")
        assert record.attempts[0].returned_by is not None
        assert record.attempts[0].returned_by.value == "REFER"


@async_test
async def test_sip_api_invite_return_routes_the_new_leg_and_ends_the_old_one(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    flow = policy(TransferMode.SIP_API, ReturnTransferType.INVITE)
    async with running_rig(sandbox, tmp_path, flow=flow) as rig:
        caller = rig.sip_caller(SipLeg(ending="invite", output=AGENT), **IVR)
        caller.hand_off()
        leg = await wait_until(
            lambda: rig.sip.returns[0] if rig.sip.returns else None, 10, "INVITE"
        )
        assert isinstance(leg, Caller)
        await leg.wait_until("genagent-agent", timeout=10)
        assert leg.variables["GA_TRANSFER_TYPE"] == "AGENT"
        assert leg.variables["GA_TV_reason"] == "dispute"
        await wait_until(lambda: caller.variables.get("GA_SIP_RETURN") or None, 5, "marked")
        # ASAPP ends its first leg: the caller's channel hangs up instead of coming back.
        await caller.agent_hang_up()
        await caller.wait_until(None, timeout=5)
        record = await rig.record(caller, "routed")
        assert record.route is not None
        assert record.route.kind is RouteKind.AGENT
        assert [e for _, e, _ in record.timeline].count("route") == 1


@async_test
async def test_busy_then_unreachable_then_answered_reuses_the_conversation(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with running_rig(sandbox, tmp_path, flow=API) as rig:
        caller = rig.sip_caller(
            SipLeg(answer="busy"), SipLeg(answer="unavailable"), SipLeg(output=SYSTEM), **IVR
        )
        caller.hand_off()
        await caller.wait_until("genagent-system", timeout=10)
        transfers = await rig.transfers()
        assert len(transfers) == 3
        assert {t["externalConversationId"] for t in transfers} == {caller.channel.linkedid}
        record = await rig.record(caller, "routed")
        assert [a.outcome for a in record.attempts][:2] == [Outcome.BUSY, Outcome.FAILED]


@async_test
async def test_asapp_never_answering_ends_in_the_fallback(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with running_rig(sandbox, tmp_path, flow=HEADERS) as rig:
        caller = rig.sip_caller(
            SipLeg(answer="no-answer"), SipLeg(answer="busy"), SipLeg(answer="unavailable"), **IVR
        )
        caller.hand_off()
        await caller.wait_until("genagent-fallback", timeout=10)
        assert len(caller.invites) == 3  # TRANSFER_MAX_ATTEMPTS
        headers = [dict(i.headers)["X-GA-extConversationId"] for i in caller.invites]
        assert set(headers) == {caller.channel.linkedid}


@async_test
async def test_caller_hanging_up_with_asapp_leaves_no_route(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with running_rig(sandbox, tmp_path, flow=API) as rig:
        caller = rig.sip_caller(SipLeg(ending="caller-hangs-up"), **IVR)
        caller.hand_off()
        record = await rig.record(caller, "ended")
        assert record.route is None
        assert [a.get("Context") for a in rig.fake.actions_named("Redirect")] == [
            "genagent-sip-dial"
        ]


@async_test
async def test_a_refer_without_or_with_bad_parameters_goes_to_the_fallback(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with running_rig(sandbox, tmp_path, flow=HEADERS) as rig:
        bare = rig.sip_caller(SipLeg(ending="refer", refer_to=RETURN_URI), **IVR)
        bad = rig.sip_caller(
            SipLeg(ending="refer", refer_to=f"<{RETURN_URI}?X-GA-transfer=MAYBE&X-GA-tv-%ZZ=1&=x>"),
            **IVR,
        )
        bare.hand_off()
        bad.hand_off()
        await bare.wait_until("genagent-fallback", timeout=10)
        await bad.wait_until("genagent-fallback", timeout=10)
        assert rig.sip.refer_statuses == [200, 200]
        assert bare.variables["GA_FALLBACK_REASON"]


@async_test
async def test_a_refer_to_longer_than_one_getvar_arrives_whole(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    long_value = "x" * 1500
    output = {"transferType": "AGENT", "transferVariables": {"note": long_value, "last": "end"}}
    async with running_rig(sandbox, tmp_path, flow=HEADERS) as rig:
        caller = rig.sip_caller(SipLeg(ending="refer", output=output), **IVR)
        caller.hand_off()
        await caller.wait_until("genagent-agent", timeout=10)
        assert caller.variables["GA_REFER_TO_PARTS"] == "2"
        # Read whole: the parameter after the 1,023rd character arrived too ...
        assert caller.variables["GA_TV_last"] == "end"
        # ... and a route variable is, as in phone-number mode, one AMI line at most.
        assert caller.variables["GA_TV_note"] == long_value[:1015]


@async_test
async def test_repeated_hand_offs_by_sip_and_a_per_hand_off_mode(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with running_rig(sandbox, tmp_path, flow=API) as rig:
        caller = rig.sip_caller(
            SipLeg(ending="bye", output=SYSTEM),
            SipLeg(ending="refer", output={"transferType": "AGENT"}),
            **IVR,
        )
        caller.hand_off()
        await caller.wait_until("genagent-system", timeout=10)
        caller.set_variable("GA_TRANSFER_MODE", "sip-headers")
        caller.hand_off()
        await caller.wait_until("genagent-agent", timeout=10)
        first, second = caller.invites
        assert [n for n, _ in first.headers] == ["X-ASAPP-CallTransferId"]
        assert "X-GA-taskName" in dict(second.headers)
        assert len(await rig.transfers()) == 1  # the second hand-off made no API call
        record = await rig.record(caller, "routed")
        assert [h.mode.value for h in record.handoffs] == ["sip-api", "sip-headers"]
        assert caller.variables.get("GA_TV_b", "") == ""  # the first route's are cleared


@async_test
async def test_a_many_header_invite_fits_the_ami_line_limit(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    big = "é" * 1000  # 2,000 bytes, of which the worker reads 1,023 as Getvar would
    async with running_rig(sandbox, tmp_path, flow=HEADERS) as rig:
        caller = rig.sip_caller(SipLeg(ending="refer", output=AGENT), GA_IV_big=big, **IVR)
        caller.hand_off()
        await caller.wait_until("genagent-agent", timeout=10)
        assert dict(caller.invites[0].headers)["X-GA-iv-big"] == "é" * 511
        assert all(not a.message.line_too_long for a in rig.fake.actions)
        assert setvars(rig, caller, "_GAH_COUNT")


@async_test
async def test_a_refused_refer_leaves_the_caller_with_asapp_until_its_bye(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with running_rig(sandbox, tmp_path, flow=API) as rig:
        caller = rig.sip_caller(SipLeg(ending="none"), **IVR)
        caller.hand_off()
        await wait_until(lambda: (caller.dial and caller.dial.phase == "bridged") or None, 10, "")
        assert caller.refer("sip:sbc?X-GA-transfer=AGENT&X-GA-tv-a=raw space") == 400
        transfer_id = f"{caller.uniqueid}-1"
        url = f"{sandbox.url}/sandbox/transfers/{transfer_id}/complete"
        assert (await rig.http.post(url, json=AGENT)).status_code == 200
        await caller.agent_hang_up()  # ASAPP gives up on the REFER and hangs up
        await caller.wait_until("genagent-agent", timeout=10)
        record = await rig.record(caller, "routed")
        assert record.attempts[0].returned_by is not None
        assert record.attempts[0].returned_by.value == "BYE"


@async_test
async def test_a_sip_uri_the_dialplan_cannot_dial_stops_the_worker_at_start_up(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    bad = replace(API, sip=replace(API.sip, asapp_uri="sip:genagent@asapp.example.com,evil"))
    async with running_rig(sandbox, tmp_path, flow=bad, start=False) as rig:
        with pytest.raises(StartupError, match="SIP_ASAPP_URI"):
            await asyncio.wait_for(rig.worker.run(), 10)


@async_test
async def test_a_sip_hand_off_without_the_sip_dialplan_falls_back_instead_of_hanging_up(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    without_sip = Dialplan.load([CORE_CONF, ROUTES_CONF], TEST_IVR_CONF)
    flow = policy(TransferMode.PHONE_NUMBER)
    async with running_rig(sandbox, tmp_path, flow=flow, dialplan=without_sip) as rig:
        caller = rig.sip_caller(SipLeg(), GA_TRANSFER_MODE="sip-headers", **IVR)
        caller.hand_off()
        await caller.wait_until("genagent-fallback", timeout=10)
        assert not caller.gone
        assert caller.invites == []
        redirects = [a.get("Context") for a in rig.fake.actions_named("Redirect")]
        assert redirects == ["genagent-fallback"]


@async_test
async def test_a_refer_while_the_worker_is_disconnected_is_routed_after_the_resync(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    refer_to = f"{RETURN_URI}?X-GA-transfer=AGENT&X-GA-tv-queue=billing"
    async with running_rig(sandbox, tmp_path, flow=HEADERS) as rig:
        caller = rig.sip_caller(SipLeg(ending="none"), **IVR)
        caller.hand_off()
        await wait_until(lambda: (caller.dial and caller.dial.phase == "bridged") or None, 10, "")
        await rig.fake.go_away()
        await wait_until(lambda: not rig.worker.ready.is_set() or None, 10, "the worker to notice")
        assert caller.refer(refer_to) == 200  # GenerativeAgentReferred reaches nobody
        await rig.fake.start()
        await caller.wait_until("genagent-agent", timeout=15)
        assert caller.variables["GA_TV_queue"] == "billing"


@async_test
async def test_caller_hanging_up_while_held_after_a_refer_is_sent_nowhere(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    slow = replace(policy(TransferMode.SIP_API, ReturnTransferType.REFER), context_wait=30.0)
    async with running_rig(sandbox, tmp_path, flow=slow) as rig:
        await rig.http.post(f"{sandbox.url}/sandbox/faults", json={"completionLagMs": 20000})
        caller = rig.sip_caller(SipLeg(ending="refer", output=AGENT), **IVR)
        caller.hand_off()
        await caller.wait_until("genagent-sip-referred", timeout=10)
        await caller.hang_up()
        record = await rig.record(caller, "ended")  # well before the context is ready
        assert record.route is None
        assert [a.get("Context") for a in rig.fake.actions_named("Redirect")] == [
            "genagent-sip-dial"
        ]


@async_test
async def test_sip_headers_invite_return_is_routed_by_its_own_headers(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with running_rig(sandbox, tmp_path, flow=HEADERS) as rig:
        caller = rig.sip_caller(SipLeg(ending="invite", output=AGENT), **IVR)
        caller.hand_off()
        leg = await wait_until(lambda: rig.sip.returns[0] if rig.sip.returns else None, 10, "")
        assert isinstance(leg, Caller)
        await leg.wait_until("genagent-agent", timeout=10)
        assert leg.variables["GA_TRANSFER_TYPE"] == "AGENT"
        # Nothing names the caller's hand-off: its leg to GenerativeAgent is left alone.
        assert caller.dial is not None
        assert caller.variables.get("GA_SIP_RETURN", "") == ""
        assert rig.store.get(leg.uniqueid) is None  # the leg is no call of its own


@async_test
async def test_headers_beyond_what_an_invite_can_carry_are_dropped_not_the_call(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    many = {f"GA_IV_v{n:02d}": "v" * 1000 for n in range(70)}  # ~72 KB of X-GA-iv-*
    async with running_rig(sandbox, tmp_path, flow=HEADERS) as rig:
        caller = rig.sip_caller(SipLeg(ending="refer", output=AGENT), **{**IVR, **many})
        caller.hand_off()
        await caller.wait_until("genagent-agent", timeout=15)
        (invite,) = caller.invites
        sent = dict(invite.headers)
        assert sent["X-GA-taskName"] == "call_routing"  # the fixed headers come first
        assert 50 <= sum(n.startswith("X-GA-iv-v") for n in sent) < 70
        assert sum(len(n) + len(v) + 4 for n, v in invite.headers) <= 60_000
