"""The fake AMI server sends a call's whole event stream, and applies manager.conf event
filters as Asterisk does: the shipped filter lets only what the worker acts on through.

The per-call counts come from trace-2 (transfer, remote hang-up) recorded against a real
Asterisk 22.10.1 for a user reading ``call,user,system``.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from tests.fake_ami.codec import encode
from tests.fake_ami.dialplan import MANAGER_CONF, manager_entries
from tests.fake_ami.filters import EventFilters, posix_regex
from tests.fake_ami.harness import Client, async_test
from tests.fake_ami.model import Channel, channel_event, device_state, hangup_event, user_event
from tests.fake_ami.pbx import DialOutcome
from tests.fake_ami.server import FakeAsterisk
from tests.test_fake_ami import READY, redirect, transfer

# trace-2, connection C1, one call: a Local caller whose Local dial GenerativeAgent answers
# and ends, routed to genagent-agent, then hung up. Left out: what only the recording rig
# caused (the Originate of the caller: one DialBegin, one DialEnd, OriginateResponse; the
# third UserEvent its route context sent). That recording held callers with Wait, not
# MusicOnHold, so it has no MusicOnHoldStart/Stop; a hang-up request is HangupRequest or
# SoftHangupRequest depending on who asked, so the two are counted together.
TRACE_2_CALL = Counter(
    {
        "Newchannel": 4,
        "NewCallerid": 4,
        "NewConnectedLine": 4,
        "LocalBridge": 2,
        "Newstate": 5,
        "DeviceStateChange": 9,
        "DialBegin": 1,
        "DialState": 1,
        "DialEnd": 1,
        "BridgeCreate": 1,
        "BridgeEnter": 2,
        "BridgeLeave": 2,
        "BridgeDestroy": 1,
        "HangupRequest+SoftHangupRequest": 4,
        "Hangup": 4,
        "UserEvent/GenerativeAgentTransfer": 1,
        "UserEvent/GenerativeAgentReturned": 1,
    }
)
WORKER_NEEDS = {"UserEvent/GenerativeAgentTransfer", "UserEvent/GenerativeAgentReturned"}


def shipped_filters() -> EventFilters:
    entries = manager_entries(MANAGER_CONF.read_text())["genagent-adapter"]
    return EventFilters.parse(value for key, value in entries if key == "eventfilter")


def text(headers: list[tuple[str, str]]) -> str:
    return encode(headers).decode()


def a_channel(name: str = "PJSIP/caller-00000000") -> Channel:
    return Channel(
        name=name,
        uniqueid="1795215435.1",
        linkedid="1795215435.0",
        tech="PJSIP",
        caller_num="15551230001",
        caller_name="Test Caller",
        connected_num="15551230001",
        connected_name="Test Caller",
        context="genagent-handoff",
        exten="s",
    )


# --------------------------------------------------------------------------- filter rules


def test_no_filter_lets_everything_through() -> None:
    assert EventFilters().allows("Event: VarSet\r\n\r\n")
    assert not EventFilters()


def test_include_exclude_and_both_follow_manager_c() -> None:
    newchannel, varset = "Event: Newchannel\r\nChannel: PJSIP/a-1\r\n", "Event: VarSet\r\n"
    include = EventFilters.parse(["^Event: Newchannel"])
    assert include.allows(newchannel)
    assert not include.allows(varset)
    exclude = EventFilters.parse(["!^Event: Newchannel"])
    assert not exclude.allows(newchannel)
    assert exclude.allows(varset)
    # Both: an include filter must match, then no exclude filter may.
    both = EventFilters.parse(["!Channel: PJSIP/a-", "^Event: (Newchannel|VarSet)"])
    assert both.allows(varset)
    assert not both.allows(newchannel)
    assert not both.allows("Event: Hangup\r\n")


def test_posix_classes_and_line_breaks_as_asterisk_reads_them() -> None:
    pattern = posix_regex("^Event: A[[:space:]].*[[:space:]]Name: [[:digit:]]+[[:space:]]")
    assert pattern.search("Event: A\r\nOther: x\r\nName: 42\r\n")  # '.' crosses lines
    assert not pattern.search("Event: AB\r\nName: 42\r\n")
    assert posix_regex("Name: x$").search("Event: A\r\nName: x") is not None
    assert posix_regex("Name: x$").search("Event: A\r\nName: x\r\n") is None  # end of text only


@given(
    names=st.lists(st.sampled_from(["Hangup", "Newstate", "UserEvent", "VarSet"]), max_size=4),
    excluded=st.lists(st.sampled_from(["Hangup", "Newstate", "UserEvent", "VarSet"]), max_size=2),
    event=st.sampled_from(["Hangup", "HangupRequest", "Newstate", "UserEvent", "VarSet"]),
)
def test_filters_are_any_include_then_no_exclude(
    names: list[str], excluded: list[str], event: str
) -> None:
    filters = EventFilters.parse(
        [f"^Event: {n}[[:space:]]" for n in names] + [f"!^Event: {n}[[:space:]]" for n in excluded]
    )
    included = not names or event in names
    assert filters.allows(f"Event: {event}\r\nPrivilege: call,all\r\n\r\n") == (
        included and event not in excluded
    )


def test_shipped_filter_lets_only_what_the_worker_acts_on_through() -> None:
    filters = shipped_filters()
    chan = a_channel()
    passes = [
        user_event(chan, "GenerativeAgentTransfer", ("HoldTimeout", "30"), ("Handoff", "1")),
        user_event(chan, "GenerativeAgentReturned", ("DialStatus", "ANSWER")),
        hangup_event(chan, 16),
        [("Event", "FullyBooted"), ("Privilege", "system,all"), ("Uptime", "0")],
        [("Event", "Shutdown"), ("Privilege", "system,all"), ("Shutdown", "Cleanly")],
    ]
    stopped = [
        user_event(chan, "GenerativeAgentRouted"),
        user_event(chan, "GenerativeAgentTransferred"),
        channel_event("HangupRequest", chan, ("Cause", "16")),
        channel_event("SoftHangupRequest", chan, ("Cause", "16")),
        channel_event("Newchannel", chan),
        channel_event("Newstate", chan),
        channel_event("MusicOnHoldStart", chan, ("Class", "default")),
        device_state(chan, "INUSE"),
        [("Event", "HangupHandlerRun"), ("Privilege", "dialplan,all")],
    ]
    assert [filters.allows(text(headers)) for headers in passes] == [True] * len(passes)
    assert [filters.allows(text(headers)) for headers in stopped] == [False] * len(stopped)


# --------------------------------------------------------------------------- on the wire


async def _one_recorded_call(server: FakeAsterisk, worker: Client) -> str:
    """The trace-2 call: a Local caller, a Local dial answered and ended, routed, hung up."""
    server.pbx.globals.update(GA_DIAL_PREFIX="Local/", GA_DIAL_SUFFIX="@fake-pstn")
    caller = server.new_caller(READY, local=True)
    caller.script_dial(DialOutcome("ANSWER", talk=0.02))
    caller.hand_off()
    await transfer(worker, caller.name)
    await worker.wait_for_event("GenerativeAgentReturned")
    assert (await worker.send(redirect(caller.name, "genagent-agent"))).success
    await caller.hang_up()
    await worker.wait_for_event("Hangup", Channel=caller.name)
    return caller.name


@async_test
async def test_a_call_sends_what_the_recorded_asterisk_sends_and_the_filter_keeps_six() -> None:
    server = FakeAsterisk(handoff_timeout=5.0, return_timeout=5.0)
    server.accounts["unfiltered"] = server.accounts["genagent-adapter"].unfiltered()
    async with (
        server,
        Client(server, "unfiltered", "worker-secret") as unfiltered,
        Client(server, "genagent-adapter", "worker-secret") as worker,
    ):
        name = await _one_recorded_call(server, worker)
        await unfiltered.sync()
        await worker.sync()
    seen = Counter(unfiltered.names())
    seen["HangupRequest+SoftHangupRequest"] = seen.pop("HangupRequest") + seen.pop(
        "SoftHangupRequest"
    )
    for not_in_trace in ("FullyBooted", "MusicOnHoldStart", "MusicOnHoldStop"):
        del seen[not_in_trace]
    assert seen == TRACE_2_CALL
    assert sum(TRACE_2_CALL.values()) == 47
    # The worker's user, with the shipped filter: its two UserEvents and the Hangups only.
    filtered = Counter(worker.names())
    assert filtered == Counter({**dict.fromkeys(WORKER_NEEDS, 1), "Hangup": 4, "FullyBooted": 1})
    assert [m.channel for m in worker.events if m.event == "Hangup"][-1] == name


@async_test
async def test_list_answers_are_never_filtered() -> None:
    async with FakeAsterisk() as server, Client(server, "genagent-adapter", "worker-secret") as c:
        caller = server.new_caller(READY)
        channels = await c.send({"Action": "CoreShowChannels"})
        assert [m.event for m in channels[1:]] == ["CoreShowChannel", "CoreShowChannelsComplete"]
        status = await c.send({"Action": "Status", "Channel": caller.name, "AllVariables": "1"})
        assert [m.event for m in status[1:]] == ["Status", "StatusComplete"]
        plan = await c.send(
            {"Action": "ShowDialPlan", "Context": "genagent-dial", "Extension": "s"}
        )
        assert plan[1].event == "ListDialplan"
        assert plan[-1].event == "ShowDialPlanComplete"
