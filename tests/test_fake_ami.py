"""The fake AMI server behaves like the recorded Asterisk 22, seen by the real panoramisk.

The byte literals below are copied from traffic recorded against a real Asterisk 22.10.1
(AMI 11.0.0); the rest drives the fake over 127.0.0.1 with panoramisk 1.4's Manager.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.fake_ami.codec import Decoder, decode, encode
from tests.fake_ami.harness import Client, RawClient, async_test
from tests.fake_ami.model import (
    Bridge,
    Channel,
    core_show_channel,
    hangup_event,
    status_item,
    user_event,
)
from tests.fake_ami.pbx import DialOutcome, wait_until
from tests.fake_ami.server import FakeAsterisk

LOGIN = (
    b"Action: Login\r\nActionID: action/d6cfa3fe-ae7f-4b06-9286-00c421c825fe/1/4\r\n"
    b"Events: on\r\nSecret: secret\r\nUsername: adapter\r\n\r\n"
)
LOGIN_ACCEPTED = (
    b"Response: Success\r\nActionID: action/d6cfa3fe-ae7f-4b06-9286-00c421c825fe/1/4\r\n"
    b"Message: Authentication accepted\r\n\r\n"
)
FULLY_BOOTED = (
    b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 45\r\nLastReload: 25\r\n"
    b"Status: Fully Booted\r\n\r\n"
)
GETVAR_UNSET = (
    b"Response: Success\r\nActionID: action/39ab615c-b754-4401-a394-b002367ee20e/1/15\r\n"
    b"Variable: GA_NOT_SET\r\nValue: \r\n\r\n"
)
SNAPSHOT = (
    b"Channel: Local/caller@caller-sim-00000000;2\r\nChannelState: 6\r\nChannelStateDesc: Up\r\n"
    b"CallerIDNum: 15551230001\r\nCallerIDName: Test Caller\r\nConnectedLineNum: 15551230001\r\n"
    b"ConnectedLineName: Test Caller\r\nLanguage: en\r\nAccountCode: \r\n"
)
RETURNED = (
    b"Event: UserEvent\r\nPrivilege: user,all\r\n" + SNAPSHOT + b"Context: genagent-dial\r\n"
    b"Exten: s\r\nPriority: 3\r\nUniqueid: 1795215435.1\r\nLinkedid: 1795215435.0\r\n"
    b"UserEvent: GenerativeAgentReturned\r\nDialStatus: ANSWER\r\nTransferId: tr-0001\r\n\r\n"
)
STATUS = (
    b"Event: Status\r\nPrivilege: Call\r\n" + SNAPSHOT + b"Context: genagent-dial\r\nExten: s\r\n"
    b"Priority: 5\r\nUniqueid: 1795215708.21\r\nLinkedid: 1795215708.20\r\nType: Local\r\n"
    b"DNID: \r\nEffectiveConnectedLineNum: 15551230001\r\nEffectiveConnectedLineName: Test Caller"
    b"\r\nTimeToHangup: 0\r\nBridgeID: \r\nApplication: Wait\r\nData: 1\r\nNativeformats: (slin)"
    b"\r\nReadformat: slin\r\nReadtrans: \r\nWriteformat: slin\r\nWritetrans: \r\nCallgroup: 0\r\n"
    b"Pickupgroup: 0\r\nSeconds: 4\r\nVariable: GA_TRANSFER_NUMBER=15550100006\r\n"
    b"Variable: GA_TRANSFER_ID=(null)\r\n"
    b"ActionID: action/9824d9be-65ea-4885-9b68-a17c8e870f26/1/10\r\n\r\n"
)
CORE_SHOW_CHANNEL = (
    b"Event: CoreShowChannel\r\nActionID: action/9824d9be-65ea-4885-9b68-a17c8e870f26/1/11\r\n"
    + SNAPSHOT
    + b"Context: genagent-dial\r\nExten: s\r\nPriority: 5\r\nUniqueid: 1795215708.21\r\n"
    b"Linkedid: 1795215708.20\r\nApplication: Wait\r\nApplicationData: 1\r\n"
    b"Duration: 00:00:04\r\nBridgeId: \r\n\r\n"
)
HANGUP_BUSY = (
    b"Event: Hangup\r\nPrivilege: call,all\r\nChannel: Local/15550990001@fake-pstn-0000000a;2\r\n"
    b"ChannelState: 7\r\nChannelStateDesc: Busy\r\nCallerIDNum: 15551230001\r\n"
    b"CallerIDName: Test Caller\r\nConnectedLineNum: s\r\nConnectedLineName: Test Caller\r\n"
    b"Language: en\r\nAccountCode: \r\nContext: fake-pstn\r\nExten: 15550990001\r\n"
    b"Priority: 12\r\nUniqueid: 1795215482.21\r\nLinkedid: 1795215482.18\r\nCause: 17\r\n"
    b"Cause-txt: User busy\r\n\r\n"
)
HEADER_COLLISION = (
    b"Event: UserEvent\r\nPrivilege: user,all\r\n" + SNAPSHOT + b"Context: caller-sim\r\n"
    b"Exten: pitfalls\r\nPriority: 2\r\nUniqueid: 1795215507.41\r\nLinkedid: 1795215507.40\r\n"
    b"UserEvent: HeaderCollisionDemo\r\nLinkedid: custom-linkedid\r\nChannel: custom-channel\r\n"
    b"Context: custom-context\r\nNote: value with: colon\r\n\r\n"
)
RECORDED = [
    LOGIN,
    LOGIN_ACCEPTED,
    FULLY_BOOTED,
    GETVAR_UNSET,
    RETURNED,
    STATUS,
    CORE_SHOW_CHANNEL,
    HANGUP_BUSY,
    HEADER_COLLISION,
]

READY = {"GA_TASK": "call_routing", "GA_IV_customerId": "C-12345"}


def fake(**options: Any) -> FakeAsterisk:
    """A fake with short safety timeouts (the dialplan's are 30 s)."""
    options.setdefault("handoff_timeout", 5.0)
    options.setdefault("return_timeout", 5.0)
    options.setdefault("dial_timeout", 0.05)
    return FakeAsterisk(**options)


def redirect(channel: str, context: str, exten: str = "s", priority: str = "1") -> dict[str, str]:
    return {
        "Action": "Redirect",
        "Channel": channel,
        "Context": context,
        "Exten": exten,
        "Priority": priority,
    }


def setvar(channel: str, variable: str, value: str) -> dict[str, str]:
    return {"Action": "Setvar", "Channel": channel, "Variable": variable, "Value": value}


async def transfer(client: Client, channel: str, number: str = "+15550100003") -> None:
    """What the worker does at hand-off: set the number and the id, Redirect to the dial."""
    for variable, value in (("GA_TRANSFER_NUMBER", number), ("GA_TRANSFER_ID", "tr-0001")):
        assert (await client.send(setvar(channel, variable, value))).success
    answer = await client.send(redirect(channel, "genagent-dial"))
    assert answer.message == "Redirect successful"


# --------------------------------------------------------------------------- the codec


@pytest.mark.parametrize("raw", RECORDED)
def test_codec_round_trips_recorded_bytes(raw: bytes) -> None:
    assert encode(decode(raw)) == raw


def test_codec_keeps_duplicates_order_and_empty_values() -> None:
    message = decode(HEADER_COLLISION)
    assert message.get("Channel") == "Local/caller@caller-sim-00000000;2"
    assert message.get_all("linkedid") == ["1795215507.40", "custom-linkedid"]
    assert message.get("Note") == "value with: colon"
    assert decode(GETVAR_UNSET).headers[-1] == ("Value", "")
    assert encode([("AccountCode", "")]) == b"AccountCode: \r\n\r\n"


def test_decoder_reassembles_a_stream_cut_anywhere() -> None:
    stream = LOGIN + LOGIN_ACCEPTED + STATUS
    decoder = Decoder()
    messages = [m for i in range(len(stream)) for m in decoder.feed(stream[i : i + 1])]
    assert [encode(m) for m in messages] == [LOGIN, LOGIN_ACCEPTED, STATUS]


def test_fake_events_have_the_recorded_header_order() -> None:
    def channel(name: str) -> Channel:
        return Channel(name, "1.1", "1.0", "Local", "1", "n", "1", "n", "genagent-dial", "s")

    caller = channel("Local/caller@caller-sim-00000000;2")
    keys = decode(RETURNED).keys()
    built = user_event(caller, "GenerativeAgentReturned", ("DialStatus", "ANSWER"))
    assert [key for key, _ in built] + ["TransferId"] == keys
    status = status_item(caller, [("GA_TRANSFER_NUMBER", "1"), ("GA_TRANSFER_ID", "")], "id")
    assert [key for key, _ in status] == decode(STATUS).keys()
    assert [key for key, _ in core_show_channel(caller, "id")] == decode(CORE_SHOW_CHANNEL).keys()
    assert [key for key, _ in hangup_event(caller, 17)] == decode(HANGUP_BUSY).keys()
    assert dict(hangup_event(caller, 17))["Cause-txt"] == "User busy"
    assert [key for key, _ in Bridge().snapshot()][-1] == "BridgeVideoSourceMode"


# --------------------------------------------------------------------------- the wire


@async_test
async def test_wire_greeting_login_and_session_errors_as_recorded() -> None:
    async with fake() as server:
        raw = await RawClient.open(server)  # checks the greeting line
        raw.send(("Action", "Ping"), ("ActionID", "a1"))
        assert (
            await raw.read()
            == b"Response: Error\r\nActionID: a1\r\nMessage: Permission denied\r\n\r\n"
        )
        raw.writer.write(LOGIN)  # the exact bytes panoramisk sent in the recording
        assert await raw.read() == LOGIN_ACCEPTED
        booted = decode(await raw.read())
        assert booted.keys() == ["Event", "Privilege", "Uptime", "LastReload", "Status"]
        assert decode(await raw.read()).get("Event") == "SuccessfulAuth"
        raw.send(("Action", "Ping"), ("ActionID", "a2"))
        pong = decode(await raw.read())
        assert pong.keys() == ["Response", "ActionID", "Ping", "Timestamp"]
        raw.send(("Action", "Ping"))  # no ActionID sent, none echoed
        assert decode(await raw.read()).keys() == ["Response", "Ping", "Timestamp"]
        raw.send(("Action", "NoSuchAction"), ("ActionID", "a3"))
        assert decode(await raw.read()).get("Message") == (
            "Invalid/unknown command: NoSuchAction. "
            "Use Action: ListCommands to show available commands."
        )
        raw.send(("ActionID", "a4"))
        assert decode(await raw.read()).get("Message") == "Missing action in request"
        raw.send(("Action", "Logoff"), ("ActionID", "a5"))
        assert await raw.read() == (
            b"Response: Goodbye\r\nActionID: a5\r\nMessage: Thanks for all the fish.\r\n\r\n"
        )
        assert await raw.read_eof()
        raw.close()


@async_test
async def test_wire_list_answers_put_action_id_where_asterisk_does() -> None:
    async with fake() as server:
        caller = server.new_caller({"GA_TRANSFER_NUMBER": "15550100006"})
        raw = await RawClient.open(server)
        await raw.login()
        raw.send(("Action", "CoreShowChannels"), ("ActionID", "c1"))
        assert await raw.read() == (
            b"Response: Success\r\nActionID: c1\r\nEventList: start\r\n"
            b"Message: Channels will follow\r\n\r\n"
        )
        item = decode(await raw.read())
        assert item.keys()[:2] == ["Event", "ActionID"]  # ActionID second, no Privilege
        assert item.keys() == decode(CORE_SHOW_CHANNEL).keys()
        complete = decode(await raw.read())
        assert complete.headers == (
            ("Event", "CoreShowChannelsComplete"),
            ("ActionID", "c1"),
            ("EventList", "Complete"),
            ("ListItems", "1"),
        )
        raw.send(
            ("Action", "Status"),
            ("ActionID", "s1"),
            ("Channel", caller.name),
            ("Variables", "GA_TRANSFER_NUMBER,GA_TRANSFER_ID"),
        )
        assert b"Message: Channel status will follow" in await raw.read()
        status = decode(await raw.read())
        assert status.keys() == decode(STATUS).keys()  # Privilege: Call, ActionID last
        assert status.get_all("Variable") == [
            "GA_TRANSFER_NUMBER=15550100006",
            "GA_TRANSFER_ID=(null)",
        ]
        assert decode(await raw.read()).keys() == [
            "Event",
            "ActionID",
            "EventList",
            "ListItems",
            "Items",
        ]
        raw.close()


# --------------------------------------------------------------------------- panoramisk: login


@async_test
async def test_login_is_accepted_then_fully_booted_is_dispatched() -> None:
    async with fake() as server, Client(server) as client:
        booted = await client.wait_for_event("FullyBooted")
        assert booted.status == "Fully Booted"
        assert client.manager.authenticated
        assert server.actions[0].name == "Login"
        assert server.actions[0].get("Events") == "on"
        await client.wait_for_event("SuccessfulAuth")  # the all-privileges user reads security


@async_test
async def test_failed_login_answers_after_the_delay_and_closes() -> None:
    async with fake(login_failure_delay=0.2) as server:
        client = Client(server, secret="wrong")
        started = time.monotonic()
        await asyncio.wait_for(client.manager.connect(), 2)
        # The connect task resolved on TCP connect; the login answer comes later.
        login = client.manager.authenticated_future
        answer = await asyncio.wait_for(login, 2)
        assert time.monotonic() - started >= 0.2
        assert answer.response == "Error"
        assert answer.message == "Authentication failed"
        assert not client.manager.authenticated
        assert client.logins == 0
        # The fake closed the connection; panoramisk will keep retrying the same Login.
        await wait_until(lambda: client.disconnects or None, 2, "on_disconnect")
        assert not server.sessions
        client.close()


# --------------------------------------------------------------------------- panoramisk: actions


@async_test
async def test_getvar_reads_what_setvar_wrote_by_name_or_uniqueid() -> None:
    async with fake() as server, Client(server) as client:
        caller = server.new_caller(READY)
        caller.set_variable("GA_TASK", "billing")
        got = await client.send({"Action": "Getvar", "Channel": caller.name, "Variable": "GA_TASK"})
        assert (got.variable, got.value) == ("GA_TASK", "billing")
        assert (await client.send(setvar(caller.uniqueid, "GA_TRANSFER_ID", "tr-1"))).success
        lower = caller.name.lower()
        got = await client.send(
            {"Action": "Getvar", "Channel": lower, "Variable": "GA_TRANSFER_ID"}
        )
        assert got.value == "tr-1"
        # An unset variable comes as "Value: " on the last line; panoramisk strips the line
        # and loses the header: read it as message.value (""), never message["Value"].
        unset = await client.send({"Action": "Getvar", "Channel": caller.name, "Variable": "NOPE"})
        assert unset.success
        assert "Value" not in unset
        assert unset.value == ""
        # Without Channel, Getvar reads a global: the dialplan's safety timeout.
        glob = await client.send({"Action": "Getvar", "Variable": "GA_HANDOFF_TIMEOUT"})
        assert glob.value == "30"
        linked = await client.send(
            {"Action": "Getvar", "Channel": caller.name, "Variable": "CHANNEL(linkedid)"}
        )
        assert linked.value == caller.channel.linkedid


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (
            {"Action": "Getvar", "Channel": "PJSIP/gone-00000099", "Variable": "X"},
            "No such channel",
        ),
        (
            {"Action": "Setvar", "Channel": "PJSIP/gone-00000099", "Variable": "X"},
            "No such channel",
        ),
        ({"Action": "Getvar", "Channel": "PJSIP/caller-00000000"}, "No variable specified"),
        ({"Action": "Setvar", "Channel": "PJSIP/caller-00000000"}, "No variable specified"),
        ({"Action": "Hangup", "Channel": "PJSIP/gone-00000099"}, "No such channel"),
        ({"Action": "Hangup"}, "No channel specified"),
        ({"Action": "Status", "Channel": "PJSIP/gone-00000099"}, "No such channel"),
        (
            redirect("PJSIP/gone-00000099", "genagent-dial"),
            "Channel does not exist: PJSIP/gone-00000099",
        ),
        (redirect("1795215491.31", "genagent-dial"), "Channel does not exist: 1795215491.31"),
        (redirect("", "genagent-dial"), "Channel not specified"),
        ({"Action": "Redirect", "Channel": "PJSIP/caller-00000000"}, "Context not specified"),
        (
            {"Action": "Redirect", "Channel": "x", "Context": "genagent-dial", "Exten": "s"},
            "Priority not specified",
        ),
        (
            redirect("PJSIP/caller-00000000", "genagent-dial", priority="nosuchlabel"),
            "Priority is invalid",
        ),
        (
            {"Action": "ShowDialPlan", "Context": "no-such-context"},
            "Did not find context no-such-context",
        ),
    ],
)
@async_test
async def test_action_errors_are_the_recorded_messages(
    action: dict[str, str], message: str
) -> None:
    async with fake() as server, Client(server) as client:
        server.new_caller(READY)
        answer = await client.send(action)
        assert answer.response == "Error"
        assert not answer.success  # an error is a Message, never an exception
        assert answer.message == message


@async_test
async def test_redirect_accepts_a_label_and_a_missing_context_hangs_the_channel_up() -> None:
    async with fake() as server, Client(server) as client:
        caller = server.new_caller(READY)
        caller.hand_off()
        answer = await client.send(redirect(caller.name, "genagent-handoff", priority="hold"))
        assert answer.success
        other = server.new_caller(READY)
        other.hand_off()
        answer = await client.send(redirect(other.name, "no-such-context"))
        assert answer.message == "Redirect successful"  # then the channel dies, cause 0
        hangup = await client.wait_for_event("Hangup", Channel=other.name)
        assert (hangup.cause, hangup.context) == ("0", "no-such-context")
        again = await client.send(redirect(other.name, "genagent-dial"))
        assert again.message == f"Channel does not exist: {other.name}"


@async_test
async def test_redirect_racing_the_hang_up_fails_channel_not_up() -> None:
    async with fake(teardown_delay=0.2) as server, Client(server) as client:
        caller = server.new_caller(READY)
        caller.hand_off()
        first = client.manager.send_action(redirect(caller.name, "no-such-context"))
        second = client.manager.send_action(redirect(caller.name, "genagent-dial"))
        answers = await asyncio.wait_for(asyncio.gather(first, second), 2)
        assert [a.message for a in answers] == [
            "Redirect successful",
            "Redirect failed, channel not up.",
        ]


@async_test
async def test_status_all_variables_lists_what_the_ivr_set() -> None:
    async with fake() as server, Client(server) as client:
        caller = server.new_caller(READY)
        caller.hand_off()
        answer = await client.send(
            {"Action": "Status", "Channel": caller.name, "AllVariables": "true"}
        )
        ack, status, complete = answer
        assert ack.eventlist == "start"
        assert (status.event, status.channel, status.context) == (
            "Status",
            caller.name,
            "genagent-handoff",
        )
        variables = dict(item.split("=", 1) for item in status.variable)
        assert variables["GA_IV_customerId"] == "C-12345"
        assert variables["GA_TASK"] == "call_routing"
        assert variables["GA_TRANSFER_NUMBER"] == ""  # cleared by the hand-off
        # complete.items is the Mapping method: header names like Items need ["Items"].
        assert (complete.event, complete.listitems, complete["Items"]) == (
            "StatusComplete",
            "1",
            "1",
        )


@async_test
async def test_core_show_channels_is_a_list_of_every_channel() -> None:
    async with fake() as server, Client(server) as client:
        first, second = server.new_caller(READY), server.new_caller(READY)
        first.hand_off()
        await transfer(client, first.name)
        await client.wait_for_event("BridgeEnter", Channel=first.name)
        answer = await client.send({"Action": "CoreShowChannels"})
        assert answer[0].message == "Channels will follow"
        assert answer[-1].event == "CoreShowChannelsComplete"
        assert answer[-1].listitems == "3"
        items = {item.channel: item for item in answer[1:-1]}
        assert items[first.name].application == "Dial"
        assert items[first.name].bridgeid != ""
        assert items[second.name].context == "genagent-test-ivr"
        assert "PJSIP/pstn-00000002" in items
        await first.hang_up()
        await second.hang_up()
        empty = await client.send({"Action": "CoreShowChannels"})
        assert [m.listitems for m in empty] == ["", "0"]


@async_test
async def test_show_dialplan_finds_every_context_the_worker_redirects_to() -> None:
    async with fake() as server, Client(server, "genagent-adapter", "worker-secret") as client:
        for context in ("genagent-dial", "genagent-agent", "genagent-system", "genagent-fallback"):
            answer = await client.send(
                {"Action": "ShowDialPlan", "Context": context, "Extension": "s"}
            )
            assert answer[0].message == "DialPlan list will follow"
            assert answer[-1].event == "ShowDialPlanComplete"
            assert {m.context for m in answer[1:-1]} == {context}
            assert "1" in {m.priority for m in answer[1:-1]}
        dial = await client.send({"Action": "ShowDialPlan", "Context": "genagent-dial"})
        apps = {(m.extension, m.application) for m in dial[1:-1]}
        assert ("s", "Dial") in apps
        assert ("h", "NoOp") in apps
        labels = {m.extensionlabel for m in dial[1:-1] if "ExtensionLabel" in m}
        assert {"returned", "hold", "timeout", "invalid"} <= labels
        missing = await client.send(
            {"Action": "ShowDialPlan", "Context": "genagent-agent", "Extension": "x"}
        )
        assert missing.message == "Did not find extension x@genagent-agent"


@async_test
async def test_least_privilege_user_can_do_the_workers_actions_only() -> None:
    async with fake() as server, Client(server, "genagent-adapter", "worker-secret") as client:
        caller = server.new_caller(READY)
        caller.hand_off()
        await client.wait_for_event("GenerativeAgentTransfer")
        for action in (
            {"Action": "Originate", "Channel": "Local/x@y", "Application": "Wait"},
            {"Action": "Command", "Command": "core show version"},
        ):
            assert (await client.send(action)).message == "Permission denied"
        allowed = [
            {"Action": "Getvar", "Channel": caller.name, "Variable": "GA_TASK"},
            setvar(caller.name, "GA_TRANSFER_ID", "tr-1"),
            {"Action": "Status", "Channel": caller.name, "AllVariables": "true"},
            {"Action": "CoreShowChannels"},
            {"Action": "ShowDialPlan", "Context": "genagent-dial"},
            redirect(caller.name, "genagent-fallback"),
            {"Action": "Hangup", "Channel": caller.name},
        ]
        for action in allowed:
            answer = await client.send(action)
            first = answer[0] if isinstance(answer, list) else answer
            assert first.success, (action, first)
        assert "SuccessfulAuth" not in client.names()  # no "security" read
        assert "FullyBooted" in client.names()  # "system" read


# --------------------------------------------------------------------------- calls and events


@async_test
async def test_handoff_then_an_answered_dial_the_agent_ends() -> None:
    server = fake()
    # The least-privilege user as an admin who left the event filters out: every call event.
    server.accounts["genagent-adapter"] = server.accounts["genagent-adapter"].unfiltered()
    async with server, Client(server, "genagent-adapter", "worker-secret") as client:
        caller = server.new_caller(READY)
        caller.script_dial(DialOutcome("ANSWER", ring=0.01, talk=0.05))
        caller.hand_off()
        handoff = await client.wait_for_event("GenerativeAgentTransfer")
        assert (handoff.channel, handoff.context, handoff.holdtimeout) == (
            caller.name,
            "genagent-handoff",
            "30",
        )
        assert "Task" not in handoff  # no caller data in the event body
        deadline = await client.send(
            {"Action": "Getvar", "Channel": caller.name, "Variable": "GA_HOLD_DEADLINE"}
        )
        now = await client.send({"Action": "Getvar", "Variable": "EPOCH"})  # Asterisk's clock
        assert 0 < int(deadline.value) - int(now.value) <= 5
        await transfer(client, handoff.channel)
        returned = await client.wait_for_event("GenerativeAgentReturned")
        assert (returned.dialstatus, returned.transferid) == ("ANSWER", "tr-0001")
        await client.sync()
        assert client.names(caller.name) == [
            "Newchannel",
            "NewCallerid",
            "NewConnectedLine",
            "Newstate",
            "UserEvent/GenerativeAgentTransfer",
            "MusicOnHoldStart",
            "MusicOnHoldStop",
            "DialBegin",
            "DialState",
            "DialEnd",
            "BridgeEnter",
            "BridgeLeave",
            "UserEvent/GenerativeAgentReturned",
            "MusicOnHoldStart",
        ]
        agent = (await client.wait_for_event("DialBegin")).destchannel
        assert agent == "PJSIP/pstn-00000001"
        assert (await client.wait_for_event("DialBegin")).dialstring == "+15550100003@pstn"
        agent_events = [(m.event, m.get("Cause")) for m in client.events if m.channel == agent]
        assert agent_events[-1] == ("Hangup", "16")
        # The worker routes the caller: Setvar the routing variables, Redirect to the route.
        for variable, value in (("GA_TRANSFER_TYPE", "AGENT"), ("GA_CURRENT_TASK", "billing")):
            assert (await client.send(setvar(caller.name, variable, value))).success
        assert (await client.send(redirect(caller.name, "genagent-agent"))).success
        await caller.wait_until("genagent-agent")
        assert caller.variables["GA_TRANSFER_TYPE"] == "AGENT"
        assert [a.name for a in server.actions if a.name != "Ping"] == [
            "Login",
            *["Getvar"] * 2,
            *["Setvar"] * 2,
            "Redirect",
            *["Setvar"] * 2,
            "Redirect",
        ]
        redirect_to_dial = server.actions_named("Redirect")[0]
        assert redirect_to_dial.message.headers[1:] == (
            ("ActionID", redirect_to_dial.get("ActionID")),
            ("Channel", caller.name),
            ("Context", "genagent-dial"),
            ("Exten", "s"),
            ("Priority", "1"),
        )


@async_test
async def test_agent_hang_up_on_demand_and_a_retry_dial() -> None:
    async with fake() as server, Client(server) as client:
        caller = server.new_caller(READY)
        caller.script_dial(DialOutcome("BUSY"), DialOutcome("ANSWER", talk=None))
        caller.hand_off()
        await transfer(client, caller.name)
        await client.wait_for_event("GenerativeAgentReturned", DialStatus="BUSY")
        await transfer(client, caller.name, "+15550100004")  # the worker's retry
        await client.wait_for_event("BridgeEnter", Channel=caller.name)
        await caller.agent_hang_up()
        returned = await client.wait_for_event("GenerativeAgentReturned", DialStatus="ANSWER")
        assert returned.context == "genagent-dial"
        assert caller.context == "genagent-dial"
        assert caller.channel.application == "MusicOnHold"


@pytest.mark.parametrize(
    ("status", "causes"),
    [("NOANSWER", ["0"]), ("BUSY", ["17"]), ("CONGESTION", ["34"]), ("CHANUNAVAIL", ["0"])],
)
@async_test
async def test_failed_dials_return_the_dial_status(status: str, causes: list[str]) -> None:
    async with fake() as server, Client(server) as client:
        caller = server.new_caller(READY)
        caller.script_dial(DialOutcome(status))
        caller.hand_off()
        await transfer(client, caller.name)
        returned = await client.wait_for_event("GenerativeAgentReturned")
        assert returned.dialstatus == status
        await client.sync()
        names = client.names(caller.name)
        if status == "CHANUNAVAIL":  # no DialBegin/DialEnd: the dialplan just continues
            assert "DialBegin" not in names
            assert "DialEnd" not in names
        else:
            dial_end = await client.wait_for_event("DialEnd")
            assert dial_end.dialstatus == status
        hangups = [m.cause for m in client.events if m.event == "Hangup"]
        assert hangups == causes
        assert names[-1] == "MusicOnHoldStart"  # held again, waiting for the worker


@async_test
async def test_local_dial_prefix_dials_both_halves_as_recorded() -> None:
    async with fake() as server, Client(server) as client:
        server.pbx.globals.update(GA_DIAL_PREFIX="Local/", GA_DIAL_SUFFIX="@fake-pstn")
        caller = server.new_caller(READY)
        caller.script_dial(DialOutcome("BUSY"))
        caller.hand_off()
        await transfer(client, caller.name, "15550990001")
        begin = await client.wait_for_event("DialBegin")
        assert begin.destchannel == "Local/15550990001@fake-pstn-00000001;1"
        assert begin.dialstring == "15550990001@fake-pstn"
        await client.wait_for_event("GenerativeAgentReturned", DialStatus="BUSY")
        hangups = [(m.channel[-2:], m.cause) for m in client.events if m.event == "Hangup"]
        assert hangups == [(";1", "0"), (";2", "17")]


@async_test
async def test_a_transfer_number_the_dialplan_refuses_returns_invalidargs() -> None:
    async with fake() as server, Client(server) as client:
        caller = server.new_caller(READY)
        caller.hand_off()
        await transfer(client, caller.name, "+1555&PJSIP/evil")
        returned = await client.wait_for_event("GenerativeAgentReturned")
        assert returned.dialstatus == "INVALIDARGS"
        assert "DialBegin" not in client.names()


@pytest.mark.parametrize("moment", ["held", "ringing", "bridged", "returned"])
@async_test
async def test_caller_hang_up_ends_the_call_without_a_return(moment: str) -> None:
    async with fake() as server, Client(server) as client:
        caller = server.new_caller(READY)
        caller.script_dial(DialOutcome("ANSWER", ring=5.0 if moment == "ringing" else 0.01))
        caller.hand_off()
        if moment != "held":
            await transfer(client, caller.name)
            waited = {"ringing": "DialState", "bridged": "BridgeEnter", "returned": "DialEnd"}
            await client.wait_for_event(waited[moment], Channel=caller.name)
        if moment == "returned":
            await caller.agent_hang_up()
        await caller.hang_up()
        hangup = await client.wait_for_event("Hangup", Channel=caller.name)
        assert hangup.cause == "16"
        names = client.names(caller.name)
        assert names.count("UserEvent/GenerativeAgentReturned") == int(moment == "returned")
        if moment == "ringing":
            assert (await client.wait_for_event("DialEnd")).dialstatus == "CANCEL"
        if moment == "bridged":
            assert names[-3:] == ["HangupRequest", "BridgeLeave", "Hangup"]
        if moment in ("held", "returned"):
            assert names[-3:] == ["HangupRequest", "MusicOnHoldStop", "Hangup"]
        late = await client.send(redirect(caller.name, "genagent-agent"))
        assert late.message == f"Channel does not exist: {caller.name}"


@async_test
async def test_safety_timeout_sends_a_forgotten_caller_to_the_fallback() -> None:
    async with fake(handoff_timeout=0.05) as server, Client(server) as client:
        caller = server.new_caller(READY)
        caller.hand_off()
        await caller.wait_until("genagent-fallback")
        assert caller.variables["GA_FALLBACK_REASON"] == "handoff-timeout"
        await client.sync()
        assert client.names(caller.name)[-1] == "MusicOnHoldStop"
        status = await client.send({"Action": "Status", "Channel": caller.name})
        assert (status[1].context, status[1].priority) == ("genagent-fallback", "1")


@async_test
async def test_concurrent_callers_keep_their_own_events() -> None:
    async with fake() as server, Client(server) as client:
        callers = [server.new_caller(READY) for _ in range(3)]
        outcomes = ["ANSWER", "BUSY", "NOANSWER"]
        for caller, status in zip(callers, outcomes, strict=True):
            caller.script_dial(DialOutcome(status, talk=0.02))
            caller.hand_off()
        await asyncio.gather(*(transfer(client, caller.name) for caller in callers))
        for caller, status in zip(callers, outcomes, strict=True):
            returned = await client.wait_for_event("GenerativeAgentReturned", Channel=caller.name)
            assert returned.dialstatus == status
            assert returned.linkedid == caller.channel.linkedid


# --------------------------------------------------------------------------- connection loss


@async_test
async def test_dropped_connection_reconnects_and_replays_an_unanswered_action() -> None:
    async with fake() as server, Client(server) as client:
        caller = server.new_caller(READY)
        server.stalled_actions.add("setvar")
        pending = client.manager.send_action(setvar(caller.name, "GA_TRANSFER_ID", "tr-1"))
        await server.wait_for_action("Setvar")
        server.drop_connections()
        server.stalled_actions.clear()
        await client.wait_logged_in(2, timeout=3)
        # panoramisk re-sent the unanswered action itself after the new FullyBooted.
        answer = await asyncio.wait_for(pending, 2)
        assert answer.message == "Variable Set"
        sent = server.actions_named("Setvar")
        assert len(sent) == 2
        assert sent[0].get("ActionID") == sent[1].get("ActionID")
        assert sent[0].session != sent[1].session
        assert client.disconnects


@async_test
async def test_restart_sends_shutdown_then_boots_with_new_numbering() -> None:
    async with fake() as server, Client(server) as client:
        caller = server.new_caller(READY)
        caller.hand_off()
        restarting = asyncio.create_task(server.restart(down_for=0.4))
        await client.wait_for_event("Shutdown")
        await asyncio.sleep(0.1)  # EOF 0.01 s after Shutdown, listening again 0.4 s later
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", server.port)
        await restarting
        hangup = await client.wait_for_event("Hangup", Channel=caller.name)
        assert hangup.cause == "0"
        shutdown = await client.wait_for_event("Shutdown")
        assert (shutdown.shutdown, shutdown.restart) == ("Cleanly", "True")
        assert client.disconnects[0].event == "Shutdown"  # on_disconnect gets the event
        await client.wait_logged_in(2, timeout=3)
        await client.sync()
        booted = [m for m in client.events if m.event == "FullyBooted"]
        assert booted[-1].uptime == "0"
        channels = await client.send({"Action": "CoreShowChannels"})
        assert channels[-1].listitems == "0"
        again = server.new_caller(READY)
        assert again.name == caller.name == "PJSIP/caller-00000000"  # names restart ...
        assert again.uniqueid.endswith(".0")
        assert again.uniqueid != caller.uniqueid  # ... Uniqueids do not repeat


@async_test
async def test_restart_during_boot_sends_fully_booted_after_login() -> None:
    async with fake() as server:
        restarting = asyncio.create_task(server.restart(down_for=0.05, boot_delay=0.5))
        await asyncio.sleep(0.2)  # listening again, not yet fully booted
        raw = await RawClient.open(server)
        raw.send(("Action", "Login"), ("Username", "adapter"), ("Secret", "secret"))
        assert b"Authentication accepted" in await raw.read()
        assert decode(await raw.read()).get("Event") == "SuccessfulAuth"
        booted = decode(await raw.read())
        assert booted.keys() == ["Event", "Privilege", "Status", "Uptime", "LastReload"]
        assert booted.get("Uptime") == "0"
        await restarting
        raw.close()
