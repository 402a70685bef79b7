"""The fake Asterisk's SIP flows behave like the recorded Asterisk 22 with PJSIP.

Event names, their order and header lists below are copied from asterisk-sip-traces/
(trace-sip-1 BYE, trace-sip-4/4b REFER, trace-sip-9/9b Refer-To values, trace-sip-10
INVITE return, trace-sip-3/3b limits); the fake is driven over 127.0.0.1 by panoramisk.
"""

from __future__ import annotations

from typing import Any

from adapter.asterisk.sip_channel import header_variables
from tests.fake_ami.harness import Client, async_test
from tests.fake_ami.pbx import Caller, DialOutcome
from tests.fake_ami.server import FakeAsterisk
from tests.test_fake_ami import READY, redirect, setvar
from tests.test_fake_ami import fake as filtered_fake

# trace-sip-4-refer-headers-mode, the BlindTransfer event's headers in wire order.
BLIND_TRANSFER_HEADERS = [
    "Event", "Privilege", "Result",
    *(f"Transferer{h}" for h in (
        "Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum", "CallerIDName",
        "ConnectedLineNum", "ConnectedLineName", "Language", "AccountCode", "Context",
        "Exten", "Priority", "Uniqueid", "Linkedid",
    )),
    *(f"Transferee{h}" for h in (
        "Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum", "CallerIDName",
        "ConnectedLineNum", "ConnectedLineName", "Language", "AccountCode", "Context",
        "Exten", "Priority", "Uniqueid", "Linkedid",
    )),
    "BridgeUniqueid", "BridgeType", "BridgeTechnology", "BridgeCreator", "BridgeName",
    "BridgeNumChannels", "BridgeVideoSourceMode", "IsExternal", "Context", "Extension",
]  # fmt: skip
# The ASAPP doc's Refer-To, as sent in trace-sip-4.
DOC_REFER_TO = (
    "sip:your-sbc.example.com?X-GA-extConId=conv-12345&X-GA-transfer=SYSTEM"
    "&X-GA-tv-next_action=schedule_callback&X-GA-tv-priority=high"
    "&X-GA-rv-account_balance=1250.00&X-GA-rv-last_payment_date=2025-01-10"
)


def fake() -> FakeAsterisk:
    """The fake with the worker's user unfiltered (an admin who left the eventfilter
    lines out): these tests compare every event with the recordings."""
    server = filtered_fake()
    server.accounts["genagent-adapter"] = server.accounts["genagent-adapter"].unfiltered()
    return server


async def sip_dial(
    client: Client, caller: Caller, headers: list[tuple[str, str]], uri: str = "sip:ga@asapp"
) -> None:
    """What the worker does for a SIP hand-off: the variables, then the Redirect."""
    variables, _ = header_variables(headers)
    for name, value in [("GA_SIP_URI", uri), ("GA_TRANSFER_ID", "tr-0001"), *variables]:
        assert (await client.send(setvar(caller.name, name, value))).success
    assert (await client.send(redirect(caller.name, "genagent-sip-dial"))).success


async def bridged(server: FakeAsterisk, client: Client, **headers: str) -> Caller:
    caller = server.new_caller(READY)
    caller.script_dial(DialOutcome("ANSWER", ring=0.01, talk=None))
    caller.hand_off()
    await client.wait_for_event("GenerativeAgentTransfer")
    await sip_dial(client, caller, list(headers.items()))
    await client.wait_for_event("BridgeEnter", channel=caller.name)
    return caller


def after(client: Client, name: str) -> list[str]:
    """Event names (UserEvents with their name) from the first ``name`` on."""
    names = [
        f"UserEvent/{m.userevent}" if m.event == "UserEvent" else m.event for m in client.events
    ]
    return names[names.index(name) :]


async def getvar(client: Client, channel: str, variable: str) -> Any:
    return (await client.send({"Action": "Getvar", "Channel": channel, "Variable": variable})).value


@async_test
async def test_sip_dial_sends_the_headers_and_a_bye_returns_like_a_pstn_dial() -> None:
    async with fake() as server, Client(server, "genagent-adapter", "worker-secret") as client:
        long_value = "é" * 2500  # 5,000 bytes: five AMI lines' worth
        caller = await bridged(
            server, client, **{"X-ASAPP-CallTransferId": "tr-0001", "X-GA-iv-big": long_value}
        )
        invite = caller.invites[0]
        assert invite.uri == "sip:ga@asapp"
        assert invite.headers == [
            ("X-ASAPP-CallTransferId", "tr-0001"),
            ("X-GA-iv-big", long_value),
        ]
        leg = (await client.wait_for_event("DialBegin")).destchannel
        assert leg.startswith("PJSIP/genagent-asapp-")
        assert await getvar(client, leg, "TRANSFER_CONTEXT") == "genagent-sip-refer"
        await client.send({"Action": "Hangup", "Channel": leg})  # stands for ASAPP's BYE
        returned = await client.wait_for_event("GenerativeAgentReturned")
        assert (returned.dialstatus, returned.context) == ("ANSWER", "genagent-sip-dial")


@async_test
async def test_a_value_longer_than_a_dialplan_line_arrives_cut() -> None:
    async with fake() as server, Client(server, "genagent-adapter", "worker-secret") as client:
        caller = await bridged(server, client, **{"X-GA-iv-huge": "v" * 10000})
        ((name, value),) = caller.invites[0].headers
        assert name == "X-GA-iv-huge"
        assert 7000 < len(value) < 8192  # trace-sip-3: 8,160 of 10,000 arrived


@async_test
async def test_refer_is_a_blind_transfer_in_the_recorded_order() -> None:
    for leg_first, expected in (
        (True, ["Unhold", "BlindTransfer", "BridgeLeave", "Hangup", "BridgeLeave",
                "BridgeDestroy", "UserEvent/GenerativeAgentReferred"]),  # trace-sip-4
        (False, ["Unhold", "BlindTransfer", "BridgeLeave", "BridgeLeave", "Hangup",
                 "BridgeDestroy", "UserEvent/GenerativeAgentReferred"]),  # trace-sip-4b
    ):  # fmt: skip
        async with fake() as server, Client(server, "genagent-adapter", "worker-secret") as client:
            caller = await bridged(server, client)
            assert caller.refer(DOC_REFER_TO, leg_first=leg_first) == 200
            referred = await client.wait_for_event("GenerativeAgentReferred")
            await client.sync()
            names = after(client, "Unhold")
            assert [n for n in names if n not in ("MusicOnHoldStart",)] == expected
            wire = next(m for m in server.events if m.get("Event") == "BlindTransfer")
            assert [key for key, _ in wire.headers] == BLIND_TRANSFER_HEADERS
            blind = next(m for m in client.events if m.event == "BlindTransfer")
            assert (blind.transfereechannel, blind.context, blind.extension) == (
                caller.name,
                "genagent-sip-refer",
                "s",
            )
            assert "GenerativeAgentReturned" not in [m.get("UserEvent") for m in client.events]
            assert (referred.context, referred.parts, referred.transferid) == (
                "genagent-sip-referred",
                "1",
                "tr-0001",
            )
            assert await getvar(client, caller.name, "GA_REFER_TO_1") == DOC_REFER_TO
            assert await getvar(client, caller.name, "SIPREFERTOHDR") == "sip:your-sbc.example.com"


@async_test
async def test_refused_refers_leave_no_trace_on_ami_and_the_caller_bridged() -> None:
    async with fake() as server, Client(server, "genagent-adapter", "worker-secret") as client:
        caller = await bridged(server, client)
        await client.sync()
        seen = len(client.events)
        assert caller.refer("sip:sbc?X-GA-transfer=AGENT&X-GA-tv-n=a b") == 400  # raw space
        assert caller.refer("sip:sbc?X-GA-tv-city=Zoë") == 400  # raw UTF-8
        assert caller.refer("sip:%2A@sbc?X-GA-transfer=AGENT") == 404  # no such extension
        await client.sync()
        assert len(client.events) == seen
        assert caller.dial is not None
        assert caller.dial.phase == "bridged"


@async_test
async def test_long_refer_to_reads_back_exactly_in_pieces_not_in_one_getvar() -> None:
    async with fake() as server, Client(server, "genagent-adapter", "worker-secret") as client:
        caller = await bridged(server, client)
        refer_to = "sip:sbc?X-GA-transfer=AGENT&X-GA-tv-long=" + "x" * 2460
        assert caller.refer(refer_to) == 200
        await client.wait_for_event("GenerativeAgentReferred")
        whole = await getvar(client, caller.name, "GA_REFER_TO")
        assert len(whole) == 1023  # trace-sip-9b: Getvar returns 1,023 characters at most
        parts = int(await getvar(client, caller.name, "GA_REFER_TO_PARTS"))
        pieces = [
            await getvar(client, caller.name, f"GA_REFER_TO_{n}") for n in range(1, parts + 1)
        ]
        assert parts == 3
        assert "".join(pieces) == refer_to


@async_test
async def test_refer_to_kept_only_under_the_transferrer_data_prefix() -> None:
    async with fake() as server, Client(server, "genagent-adapter", "worker-secret") as client:
        caller = await bridged(server, client)
        assert caller.refer("sip:sbc?X-GA-transfer=AGENT", header="refer-to") == 200
        await client.wait_for_event("GenerativeAgentReferred")
        assert await getvar(client, caller.name, "HASH(TRANSFER_DATA,Refer-To)") == ""
        assert await getvar(client, caller.name, "GA_REFER_TO_1") == "sip:sbc?X-GA-transfer=AGENT"
    async with fake() as server, Client(server, "genagent-adapter", "worker-secret") as client:
        caller = await bridged(server, client)
        caller.channel.set_var("GET_TRANSFERRER_DATA", "")  # a dialplan that did not ask
        assert caller.refer(DOC_REFER_TO) == 200
        referred = await client.wait_for_event("GenerativeAgentReferred")
        assert referred.parts == "0"


@async_test
async def test_invite_return_is_a_new_channel_held_in_the_endpoint_context() -> None:
    async with fake() as server, Client(server, "genagent-adapter", "worker-secret") as client:
        uri = "sip:genagent-return@127.0.0.1:5070;transfer=tr-inv-1"
        ret = server.pbx.invite_return(uri, {"X-GA-transfer": "AGENT"})
        assert isinstance(ret, Caller)
        event = await client.wait_for_event("GenerativeAgentInviteReturn")
        new = next(m for m in client.events if m.event == "Newchannel")
        assert (new.channel, new.channelstatedesc, new.context, new.exten, new.calleridnum) == (
            ret.name,
            "Ring",
            "genagent-sip-inbound",
            "genagent-return",
            "genagent",
        )
        assert event.channel == ret.name
        assert await getvar(client, ret.name, "CHANNEL(pjsip,request_uri)") == uri
        assert await getvar(client, ret.name, "PJSIP_HEADER(read,X-GA-transfer)") == "AGENT"
        assert (await client.send(redirect(ret.name, "genagent-agent"))).success
        await ret.wait_until("genagent-agent")
        assert server.pbx.invite_return("sip:%2A@127.0.0.1", {}) == 404


@async_test
async def test_an_invite_over_64_kb_is_not_sent_and_the_dial_ends_congestion() -> None:
    async with fake() as server, Client(server, "genagent-adapter", "worker-secret") as client:
        caller = server.new_caller(READY)
        caller.hand_off()
        await client.wait_for_event("GenerativeAgentTransfer")
        headers = [(f"X-GA-iv-v{n}", "v" * 7000) for n in range(10)]  # ~70 KB
        await sip_dial(client, caller, headers)
        returned = await client.wait_for_event("GenerativeAgentReturned")
        assert returned.dialstatus == "CONGESTION"  # trace-sip-3: 600 x 100 chars
        hangups = [m for m in client.events if m.event == "Hangup"]
        assert [m.cause for m in hangups] == ["34"]
