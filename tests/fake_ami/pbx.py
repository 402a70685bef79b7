"""The telephony side of the fake Asterisk: channels, and a caller's path through the
``genagent-handoff`` and ``genagent-dial`` contexts of the repository's dialplan.

No sockets here: every event goes to the ``emit`` callback the AMI server gives, in the
order and with the headers the recorded Asterisk sends to a least-privilege user (call,
user and system classes), DeviceStateChange, NewCallerid/NewConnectedLine and LocalBridge
included: about 50 events for a Local caller whose Local dial is answered. Not emitted:
dialplan-class events (Newexten, VarSet), which that user does not read. Route contexts
are not run: a channel Redirected into one stays at the step it was sent to.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tests.fake_ami import sip
from tests.fake_ami.codec import Header
from tests.fake_ami.dialplan import Dialplan
from tests.fake_ami.model import (
    BUSY,
    DOWN,
    RING,
    RINGING,
    UP,
    Bridge,
    Channel,
    Numbering,
    bridge_event,
    channel_event,
    device_state,
    dial_event,
    hangup_event,
    identity_events,
    local_bridge,
    user_event,
)

T = TypeVar("T")

IVR, HANDOFF, DIAL, FALLBACK = (
    "genagent-test-ivr",
    "genagent-handoff",
    "genagent-dial",
    "genagent-fallback",
)

# The admin's IVR in the tests: where callers are before Goto(genagent-handoff,s,1).
TEST_IVR_CONF = f"""
[{IVR}]
exten => s,1,Answer()
 same => n,Set(GA_TASK=call_routing)
 same => n,Goto({HANDOFF},s,1)
"""

# What the hand-off clears before telling the adapter (as extensions_genagent.conf does).
CLEARED_AT_HANDOFF = (
    "GA_TRANSFER_NUMBER",
    "GA_TRANSFER_ID",
    "GA_TRANSFER_TYPE",
    "GA_CURRENT_TASK",
    "GA_FALLBACK_REASON",
)


async def wait_until(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``check`` until it returns something other than None."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (found := check()) is None:
        if loop.time() > deadline:
            raise AssertionError(f"fake AMI: timed out waiting for {what}")
        await asyncio.sleep(0.005)
    return found


@dataclass(frozen=True, slots=True)
class DialOutcome:
    """How the GenerativeAgent number answers one dial.

    ``status`` is ANSWER, NOANSWER, BUSY, CONGESTION or CHANUNAVAIL. ``ring``: seconds of
    ringing before the answer. ``talk``: seconds until GenerativeAgent hangs up after the
    answer; None waits for :meth:`Caller.agent_hang_up`. NOANSWER rings for the dial timeout.
    """

    status: str = "ANSWER"
    ring: float = 0.01
    talk: float | None = None


ANSWER_THEN_WAIT = DialOutcome()

DialHandler = Callable[["Caller", str], Awaitable[DialOutcome | None]]


@dataclass(eq=False)
class _Dial:
    """The dial in progress: the dialed leg(s), its phase, the bridge once answered."""

    legs: list[Channel]
    phase: str = "starting"  # then "ringing", "bridged", "done"
    bridge: Bridge | None = None
    agent_gone: asyncio.Event = field(default_factory=asyncio.Event)


class Caller:
    """A caller's channel, and the handle tests script the call with."""

    def __init__(self, pbx: Pbx, channel: Channel) -> None:
        self.pbx = pbx
        self.channel = channel
        self.outcomes: deque[DialOutcome] = deque()
        self.program: asyncio.Task[None] | None = None
        self.holding = False
        self.dial: _Dial | None = None
        self.gone = False
        self.invites: list[sip.SipInvite] = []  # what each SIP dial sent GenerativeAgent
        self.partner: Channel | None = None  # the ``;1`` half of a Local caller

    @property
    def name(self) -> str:
        return self.channel.name

    @property
    def uniqueid(self) -> str:
        return self.channel.uniqueid

    @property
    def context(self) -> str:
        return self.channel.context

    @property
    def variables(self) -> dict[str, str]:
        return self.channel.variables

    def set_variable(self, name: str, value: str) -> None:
        """What the IVR's Set() does on this channel."""
        self.channel.set_var(name, value)

    def script_dial(self, *outcomes: DialOutcome) -> None:
        """Queue how the next dials of this caller end (one outcome per dial)."""
        self.outcomes.extend(outcomes)

    def hand_off(self) -> None:
        """The IVR's Goto(genagent-handoff,s,1): the UserEvent, then the bounded hold."""
        self.pbx.enter_handoff(self)

    async def hang_up(self, cause: int = 16) -> None:
        """The caller hangs up (a BYE from the phone), wherever the call is."""
        await self.pbx.terminate(self, cause, "HangupRequest", cause)

    async def agent_hang_up(self) -> None:
        """GenerativeAgent hangs up a bridged call; returns once the caller is held again."""
        if self.dial is None or self.dial.phase != "bridged" or self.program is None:
            raise RuntimeError(f"{self.name} is not bridged to GenerativeAgent")
        self.dial.agent_gone.set()
        await self.program

    def refer(self, refer_to: str, header: str = "Refer-To", *, leg_first: bool = True) -> int:
        """GenerativeAgent sends REFER on its bridged SIP leg; the status it learns (200,
        or 400/404 with nothing on AMI). ``leg_first``: the teardown order of trace-sip-4
        (its leg leaves the bridge first), else that of trace-sip-4b."""
        return sip.refer(self.pbx, self, refer_to, header, leg_first)

    async def wait_until(self, context: str | None = None, timeout: float = 2.0) -> None:
        """Wait until the channel is in ``context`` (with None: until it has hung up)."""

        def arrived() -> bool | None:
            done = self.gone if context is None else self.channel.context == context
            return True if done else None

        await wait_until(arrived, timeout, f"{self.name} in {context or 'hang-up'}")


@dataclass
class PbxConfig:
    """How the fake PBX behaves; None timeouts come from the dialplan's globals."""

    dialplan: Dialplan
    handoff_timeout: float | None = None
    return_timeout: float | None = None
    dial_timeout: float | None = None
    teardown_delay: float = 0.0
    default_outcome: DialOutcome = ANSWER_THEN_WAIT
    dial_handler: DialHandler | None = None


class Pbx:
    """The channels of one Asterisk run (a restart starts a new Pbx)."""

    def __init__(
        self,
        config: PbxConfig,
        emit: Callable[[list[Header]], None],
        numbering: Numbering | None = None,
    ) -> None:
        self.config = config
        self.dialplan = config.dialplan
        self.globals = dict(config.dialplan.globals)
        self.channels: list[Channel] = []
        self.callers: list[Caller] = []
        self._emit = emit
        self.numbering = numbering or Numbering()
        self._tasks: set[asyncio.Task[None]] = set()

    def close(self) -> None:
        """End every running call program (for a stop or a restart)."""
        for task in [*self._tasks, *(c.program for c in self.callers if c.program)]:
            task.cancel()

    def emit(self, headers: list[Header]) -> None:
        """Send an event to the AMI clients."""
        self._emit(headers)

    def _spawn(self, coroutine: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ----------------------------------------------------------------- lookups

    def new_caller(
        self,
        variables: dict[str, str] | None = None,
        *,
        endpoint: str = "caller",
        caller_id: tuple[str, str] = ("15551230001", "Test Caller"),
        local: bool = False,
    ) -> Caller:
        """A PJSIP caller answered in the test IVR, with these channel variables; with
        ``local``, the ``;2`` half of ``Local/<endpoint>@caller-sim`` (as recorded)."""
        num, name = caller_id
        suffix = self.numbering.suffix()
        names = [f"Local/{endpoint}@caller-sim-{suffix};{half}" for half in (1, 2)]
        channels = [
            Channel(
                name=channel_name,
                uniqueid=self.numbering.uniqueid(),
                linkedid="",
                tech="Local" if local else "PJSIP",
                caller_num=num,
                caller_name=name,
                connected_num=num,
                connected_name=name,
                context=IVR,
                exten="s",
                state=RING,
            )
            for channel_name in (names if local else [f"PJSIP/{endpoint}-{suffix}"])
        ]
        for channel in channels:
            channel.linkedid = channels[0].uniqueid
        channel = channels[-1]
        caller = Caller(self, channel)
        caller.partner = channels[0] if local else None
        self.callers.append(caller)
        self.channels.extend(channels)
        for each in channels:
            self._emit(channel_event("Newchannel", each))
        for each in channels:
            for headers in identity_events(each):
                self._emit(headers)
        if local:
            self._emit(local_bridge(*channels))
        channel.move(IVR, "s", 1, "Answer")
        for each in reversed(channels):
            each.state = UP
            self._emit(channel_event("Newstate", each))
        for each in channels:
            self._emit(device_state(each, "INUSE"))
        for key, value in (variables or {}).items():
            channel.set_var(key, value)
        return caller

    def adopt(self, channel: Channel) -> Caller:
        """A new channel the worker may act on: Newchannel, and its handle."""
        caller = Caller(self, channel)
        self.callers.append(caller)
        self.channels.append(channel)
        self._emit(channel_event("Newchannel", channel))
        return caller

    def invite_return(self, request_uri: str, headers: dict[str, str]) -> Caller | int:
        """GenerativeAgent's INVITE return to ``request_uri``: the new channel, or 404."""
        return sip.invite_return(self, request_uri, headers)

    def find(self, name: str) -> Channel | None:
        """A live channel by name (case-insensitive), else by Uniqueid, as Asterisk does."""
        for channel in self.channels:
            if channel.name.lower() == name.lower():
                return channel
        return next((c for c in self.channels if c.uniqueid == name), None)

    def caller_of(self, channel: Channel) -> Caller | None:
        return next((c for c in self.callers if c.channel is channel and not c.gone), None)

    def dialing_with(self, leg: Channel) -> Caller | None:
        """The caller whose dial reached this leg."""
        return next((c for c in self.callers if c.dial and leg in c.dial.legs), None)

    def variable(self, channel: Channel | None, name: str) -> str:
        """A channel variable, else the global of that name (as pbx_retrieve_variable)."""
        if channel is not None and name in channel.variables:
            return channel.variables[name]
        return self.globals.get(name, "")

    def read_variable(self, channel: Channel | None, name: str) -> str | None:
        """What Getvar reads: CHANNEL(...) and a few built-ins, then variables; None if
        nothing has that name."""
        if channel is not None:
            builtins = {
                "CHANNEL": channel.name,
                "UNIQUEID": channel.uniqueid,
                "CONTEXT": channel.context,
                "EXTEN": channel.exten,
                "PRIORITY": str(channel.priority),
                "HANGUPCAUSE": "0",
                "CHANNEL(name)": channel.name,
                "CHANNEL(uniqueid)": channel.uniqueid,
                "CHANNEL(linkedid)": channel.linkedid,
                "CHANNEL(context)": channel.context,
                "CHANNEL(exten)": channel.exten,
            }
            if name in builtins:
                return builtins[name]
        if channel is not None and (value := sip.read_sip_function(channel, name)) is not None:
            return value
        if name == "EPOCH":
            return str(int(time.time()))
        if (channel is not None and name in channel.variables) or name in self.globals:
            return self.variable(channel, name)
        return None

    def _seconds(self, override: float | None, name: str, channel: Channel) -> float:
        """A timeout: the override, else the variable with FILTER(0-9) as the dialplan does."""
        if override is not None:
            return override
        return float("".join(ch for ch in self.variable(channel, name) if ch.isdigit()) or 0)

    def _priority(self, context: str, app: str, data_prefix: str = "") -> int:
        step = self.dialplan.find_app(context, "s", app, data_prefix)
        return step.priority if step else 1

    def _remove(self, channel: Channel) -> None:
        if channel in self.channels:
            self.channels.remove(channel)

    # ----------------------------------------------------------------- hand-off and holds

    def enter_handoff(self, caller: Caller) -> None:
        self._leave(caller)
        channel = caller.channel
        for name in CLEARED_AT_HANDOFF:
            channel.set_var(name, "")
        # Set(GA_HANDOFF_SEQ=$[0${FILTER(0-9,${GA_HANDOFF_SEQ})} + 1])
        counted = "".join(ch for ch in channel.variables.get("GA_HANDOFF_SEQ", "") if ch.isdigit())
        channel.set_var("GA_HANDOFF_SEQ", str(int("0" + counted) + 1))
        priority = self._priority(HANDOFF, "UserEvent", "GenerativeAgentTransfer")
        channel.move(HANDOFF, "s", priority, "UserEvent")
        self._emit(
            user_event(
                channel,
                "GenerativeAgentTransfer",
                ("HoldTimeout", self.variable(channel, "GA_HANDOFF_TIMEOUT")),
                ("Handoff", channel.variables["GA_HANDOFF_SEQ"]),
            )
        )
        self.hold_for_worker(caller, HANDOFF, "handoff-timeout")

    def hold_for_worker(self, caller: Caller, context: str, reason: str) -> None:
        """The bounded hold of ``context``: GA_HANDOFF_TIMEOUT in the hand-off, else
        GA_RETURN_TIMEOUT."""
        if context == HANDOFF:
            seconds = self._seconds(
                self.config.handoff_timeout, "GA_HANDOFF_TIMEOUT", caller.channel
            )
        else:
            seconds = self._seconds(self.config.return_timeout, "GA_RETURN_TIMEOUT", caller.channel)
        self._hold(caller, context, seconds, reason)

    def _hold(self, caller: Caller, context: str, seconds: float, reason: str) -> None:
        """MusicOnHold bounded by a safety timeout, then genagent-fallback."""
        channel = caller.channel
        channel.set_var("GA_HOLD_DEADLINE", str(int(time.time() + seconds)))
        moh_class = self.variable(channel, "GA_MOH_CLASS")
        priority = self._priority(context, "MusicOnHold")
        channel.move(context, "s", priority, "MusicOnHold", f"{moh_class},{seconds:g}")
        self._emit(channel_event("MusicOnHoldStart", channel, ("Class", moh_class or "default")))
        caller.holding = True
        caller.program = asyncio.create_task(self._hold_expires(caller, seconds, reason))

    async def _hold_expires(self, caller: Caller, seconds: float, reason: str) -> None:
        await asyncio.sleep(seconds)
        self._stop_hold(caller)
        caller.channel.set_var("GA_FALLBACK_REASON", reason)
        self._park(caller, FALLBACK, "s", 1)
        caller.program = None

    def _stop_hold(self, caller: Caller) -> None:
        if caller.holding:
            caller.holding = False
            self._emit(channel_event("MusicOnHoldStop", caller.channel))

    def _park(self, caller: Caller, context: str, exten: str, priority: int) -> None:
        """Leave the channel at a step the fake does not run (a route context)."""
        steps = self.dialplan.steps(context, exten)
        step = next((s for s in steps if s.priority == priority), None)
        app, data = (step.app, step.data) if step else ("", "")
        caller.channel.move(context, exten, priority, app, data)

    # ----------------------------------------------------------------- redirects, hang-ups

    def redirect(self, caller: Caller, context: str, exten: str, priority: int) -> None:
        """Move the caller (after Redirect answered Success)."""
        if not self.dialplan.has_exten(context, exten):
            # Nothing to run there: the channel hangs up with cause 0.
            self.terminate(caller, 0, "SoftHangupRequest", 16, (context, exten, priority))
            return
        if (context, exten, priority) == (HANDOFF, "s", 1):
            self.enter_handoff(caller)
            return
        self._leave(caller)
        if (context, exten, priority) in ((DIAL, "s", 1), (sip.SIP_DIAL, "s", 1)):
            caller.program = asyncio.create_task(self._run_dial(caller, context))
        else:
            self._park(caller, context, exten, priority)

    def _leave(self, caller: Caller) -> None:
        """Stop whatever the channel was doing (hold, dial) before it goes elsewhere."""
        if caller.program is not None and caller.program is not asyncio.current_task():
            caller.program.cancel()
        caller.program = None
        self._stop_hold(caller)
        if caller.dial is not None:
            self._end_dial(caller.dial, caller.channel)
            caller.dial = None

    def terminate(
        self,
        caller: Caller,
        cause: int,
        request: str,
        request_cause: int,
        final_position: tuple[str, str, int] | None = None,
    ) -> asyncio.Task[None]:
        """Hang the caller up: the request event and the teardown of the dial now (so that
        a Redirect racing it fails), the Hangup event after the teardown delay."""
        channel = caller.channel
        if caller.gone or channel.hanging_up:
            return self._spawn(asyncio.sleep(0))
        channel.hanging_up = True
        self._emit(channel_event(request, channel, ("Cause", str(request_cause))))
        self._leave(caller)
        if final_position is not None:
            channel.move(*final_position)

        async def bury() -> None:
            await asyncio.sleep(self.config.teardown_delay)
            partner = caller.partner
            if partner is not None and partner in self.channels:
                self._emit(channel_event("HangupRequest", partner, ("Cause", str(cause))))
                self._emit(hangup_event(partner, cause))
                self._remove(partner)
            self._emit(hangup_event(channel, cause))
            self._remove(channel)
            caller.gone = True
            for each in (partner, channel):
                if each is not None:
                    self._emit(device_state(each, "NOT_INUSE"))

        return self._spawn(bury())

    async def hang_up_all(self) -> None:
        """What ``core restart now`` does to the calls (SoftHangupRequest cause 4)."""
        live = [caller for caller in self.callers if not caller.gone]
        await asyncio.gather(*(self.terminate(c, 0, "SoftHangupRequest", 4) for c in live))

    # ----------------------------------------------------------------- the dial

    def _dial_legs(self, caller: Caller, number: str) -> tuple[str, list[Channel]]:
        """The dial string and the dialed leg(s): one channel named after the endpoint in
        GA_DIAL_SUFFIX (``PJSIP/pstn-00000001``), or the ``;1``/``;2`` halves of a Local
        channel, of which Dial reports ``;1``."""
        prefix = self.variable(caller.channel, "GA_DIAL_PREFIX")
        suffix = self.variable(caller.channel, "GA_DIAL_SUFFIX")
        tech = prefix.split("/")[0] or "PJSIP"
        where = suffix.removeprefix("@") or "default"
        base = f"Local/{number}{suffix}-" if tech.lower() == "local" else f"{tech}/{where}-"
        halves = (";1", ";2") if tech.lower() == "local" else ("",)
        name = base + self.numbering.suffix()
        legs = [
            Channel(
                name=name + half,
                uniqueid=self.numbering.uniqueid(),
                linkedid=caller.channel.linkedid,
                tech=tech,
                caller_num=caller.channel.caller_num,
                caller_name=caller.channel.caller_name,
                connected_num=caller.channel.caller_num,
                connected_name=caller.channel.caller_name,
                context=where,
                exten=number,
                state=RING if half == ";2" else DOWN,
            )
            for half in halves
        ]
        return f"{prefix}{number}{suffix}", legs

    def _sip_leg(self, caller: Caller, uri: str) -> tuple[str, list[Channel]]:
        """The ASAPP leg of ``Dial(PJSIP/${GA_SIP_ENDPOINT}/<uri>)``, with the caller's
        inheritable variables, after genagent-sip-predial ran on it."""
        endpoint = self.variable(caller.channel, "GA_SIP_ENDPOINT")
        leg = Channel(
            name=f"PJSIP/{endpoint}-{self.numbering.suffix()}",
            uniqueid=self.numbering.uniqueid(),
            linkedid=caller.channel.linkedid,
            tech="PJSIP",
            caller_num=caller.channel.caller_num,
            caller_name=caller.channel.caller_name,
            connected_num=caller.channel.caller_num,
            connected_name=caller.channel.caller_name,
            context=sip.INBOUND,
            exten="s",
        )
        for name in caller.channel.inheritable:
            leg.set_var(name, caller.channel.variables.get(name, ""))
        leg.set_var("TRANSFER_CONTEXT", sip.REFER_CONTEXT)
        caller.invites.append(sip.SipInvite(uri, sip.predial_headers(leg)))
        return f"PJSIP/{endpoint}/{uri}", [leg]

    async def _run_dial(self, caller: Caller, context: str = DIAL) -> None:
        """Dial(<dial string>,<timeout>,g...) and its outcome: a transfer number in
        genagent-dial, GenerativeAgent's SIP URI in genagent-sip-dial."""
        channel = caller.channel
        seconds = self._seconds(self.config.dial_timeout, "GA_DIAL_TIMEOUT", channel)
        if context == sip.SIP_DIAL:
            for key in ("Refer-To", "refer-to", "r"):
                channel.variables.pop(f"~HASH~TRANSFER_DATA~{key}~", None)
            channel.set_var("GET_TRANSFERRER_DATA", "R")
            channel.set_var("GA_SIP_RETURN", "")
            number = channel.variables.get("GA_SIP_URI", "")
            if not number or seconds <= 0:
                return self._returned(caller, "INVALIDARGS", context)
            dial_string, legs = self._sip_leg(caller, number)
        else:
            number = channel.variables.get("GA_TRANSFER_NUMBER", "")
            if re.fullmatch(r"[0-9+]+", number) is None or seconds <= 0:
                return self._returned(caller, "INVALIDARGS")
            dial_string, legs = self._dial_legs(caller, number)
        priority = self._priority(context, "Dial")
        channel.move(context, "s", priority, "Dial", f"{dial_string},{seconds:g},g")
        outcome = None
        if context == sip.SIP_DIAL and sip.invite_too_big(caller.invites[-1]):
            outcome = DialOutcome("CONGESTION")  # nothing reaches GenerativeAgent
        elif self.config.dial_handler is not None:
            outcome = await self.config.dial_handler(caller, number)
        if outcome is None:
            outcome = caller.outcomes.popleft() if caller.outcomes else self.config.default_outcome
        dial = caller.dial = _Dial(legs)
        near, far = legs[0], legs[-1]
        self.channels.extend(legs)
        for leg in legs:
            self._emit(channel_event("Newchannel", leg))
        for leg in legs:
            for headers in identity_events(leg):
                self._emit(headers)
        if len(legs) == 2:
            self._emit(local_bridge(*legs))
        if outcome.status == "CHANUNAVAIL":
            # No DialBegin/DialEnd at all: the dialed channel appears and vanishes.
            self._hang_up_legs(dial, 0, 0)
            return self._returned(caller, "CHANUNAVAIL", context)
        dial_string_header = ("DialString", dial_string.partition("/")[2])
        self._emit(dial_event("DialBegin", channel, near, dial_string_header))
        if outcome.status in ("BUSY", "CONGESTION"):
            far.state = BUSY
            if far is not near:
                self._emit(channel_event("Newstate", far))
            self._emit(dial_event("DialEnd", channel, near, ("DialStatus", outcome.status)))
            cause = 17 if outcome.status == "BUSY" else 34
            self._hang_up_legs(dial, cause if far is near else 0, cause)
            return self._returned(caller, outcome.status, context)
        near.state = RINGING
        dial.phase = "ringing"
        self._emit(channel_event("Newstate", near))
        self._emit(device_state(near, "INUSE" if far is not near else "RINGING"))
        self._emit(dial_event("DialState", channel, near, ("DialStatus", "RINGING")))
        if outcome.status == "NOANSWER":
            await asyncio.sleep(seconds)
            self._emit(dial_event("DialEnd", channel, near, ("DialStatus", "NOANSWER")))
            self._hang_up_legs(dial, 0, 0)
            return self._returned(caller, "NOANSWER", context)
        await asyncio.sleep(outcome.ring)
        for leg in reversed(legs):
            leg.state = UP
            self._emit(channel_event("Newstate", leg))
        self._emit(device_state(near, "INUSE"))
        channel.set_var("DIALSTATUS", "ANSWER")
        self._emit(dial_event("DialEnd", channel, near, ("DialStatus", "ANSWER")))
        bridge = dial.bridge = Bridge()
        self._emit(bridge_event("BridgeCreate", bridge))
        self._emit(device_state(near, "INUSE"))
        for member in (near, channel):
            bridge.members += 1
            member.bridge_id = bridge.uniqueid
            self._emit(bridge_event("BridgeEnter", bridge, member))
        dial.phase = "bridged"
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(dial.agent_gone.wait(), outcome.talk)
        # GenerativeAgent hangs up: its leg goes, the caller's leg continues (option g).
        if far is not near:
            self._emit(channel_event("SoftHangupRequest", far, ("Cause", "16")))
        self._emit(channel_event("HangupRequest", near, ("Cause", "16")))
        self._end_dial(dial, channel, agent_first=True)
        return self._returned(caller, "ANSWER", context)

    def _end_dial(self, dial: _Dial, caller_channel: Channel, *, agent_first: bool = False) -> None:
        """Tear the dialed side down (cause 16): cancel the ringing, or dismantle the
        bridge, the side that hung up leaving it first."""
        near = dial.legs[0]
        if dial.phase == "ringing":
            self._emit(dial_event("DialEnd", caller_channel, near, ("DialStatus", "CANCEL")))
        if dial.bridge is None:
            self._hang_up_legs(dial, 16, 16)
        else:
            bridge = dial.bridge
            for member in (near, caller_channel) if agent_first else (caller_channel, near):
                bridge.members -= 1
                member.bridge_id = ""
                self._emit(bridge_event("BridgeLeave", bridge, member))
                if member is near:
                    self._hang_up_legs(dial, 16, 16)
            self._emit(bridge_event("BridgeDestroy", bridge))
            dial.bridge = None
        dial.phase = "done"

    def hang_up_legs(self, leg: Channel, cause: int = 16) -> None:
        """The Hangup of one dialed leg (a SIP leg after a REFER)."""
        if leg in self.channels:
            self._emit(hangup_event(leg, cause))
            self._remove(leg)

    def _hang_up_legs(self, dial: _Dial, near_cause: int, far_cause: int) -> None:
        for leg, cause in zip(dial.legs, (near_cause, far_cause), strict=False):
            if leg in self.channels:
                self._emit(hangup_event(leg, cause))
                self._remove(leg)
                self._emit(device_state(leg, "NOT_INUSE"))

    def _returned(self, caller: Caller, status: str, context: str = DIAL) -> None:
        """After the Dial: the GenerativeAgentReturned UserEvent, then the return hold
        (after a SIP dial whose call an INVITE return took over: Hangup())."""
        channel = caller.channel
        caller.dial = None
        channel.set_var("DIALSTATUS", status)
        if context == sip.SIP_DIAL and channel.variables.get("GA_SIP_RETURN") == "invite":
            caller.program = None
            self.terminate(caller, 16, "SoftHangupRequest", 16)
            return
        priority = self._priority(context, "UserEvent", "GenerativeAgentReturned")
        channel.move(context, "s", priority, "UserEvent")
        self._emit(
            user_event(
                channel,
                "GenerativeAgentReturned",
                ("DialStatus", status),
                ("TransferId", channel.variables.get("GA_TRANSFER_ID", "")),
                ("HoldTimeout", self.variable(channel, "GA_RETURN_TIMEOUT")),
            )
        )
        self.hold_for_worker(caller, context, "return-timeout")
