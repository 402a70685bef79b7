"""Channels and bridges of the fake Asterisk, and the event headers built from them.

Header names and their order follow the recorded Asterisk 22 traffic: a channel snapshot
(``Channel`` ... ``Linkedid``), the same with a ``Dest`` prefix for the dialed leg, and
a bridge snapshot (``BridgeUniqueid`` ... ``BridgeVideoSourceMode``).
"""

from __future__ import annotations

import itertools
import time
import uuid
from dataclasses import dataclass, field

from tests.fake_ami.codec import Header

STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up", 7: "Busy"}
CAUSE_TEXT = {
    0: "Unknown",
    16: "Normal Clearing",
    17: "User busy",
    34: "Circuit/channel congestion",
}
DOWN, RING, RINGING, UP, BUSY = 0, 4, 5, 6, 7


@dataclass
class Channel:
    """One Asterisk channel: its name, ids, where it is in the dialplan, its variables."""

    name: str
    uniqueid: str
    linkedid: str
    tech: str
    caller_num: str
    caller_name: str
    connected_num: str
    connected_name: str
    context: str
    exten: str
    priority: int = 1
    state: int = DOWN
    application: str = ""
    app_data: str = ""
    bridge_id: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    inheritable: set[str] = field(default_factory=set)  # set as _NAME or __NAME
    sip: dict[str, str] = field(default_factory=dict)  # request_uri, header:<name> (PJSIP)
    created: float = field(default_factory=time.monotonic)
    hanging_up: bool = False

    def set_var(self, name: str, value: str) -> None:
        """Set a variable; like Asterisk, the newest comes first in a full listing."""
        self.variables.pop(name, None)
        self.variables = {name: value, **self.variables}

    def move(self, context: str, exten: str, priority: int, app: str = "", data: str = "") -> None:
        self.context, self.exten, self.priority = context, exten, priority
        self.application, self.app_data = app, data

    def snapshot(self, prefix: str = "") -> list[Header]:
        """The channel-state headers every channel event starts with."""
        return [
            (f"{prefix}Channel", self.name),
            (f"{prefix}ChannelState", str(self.state)),
            (f"{prefix}ChannelStateDesc", STATE_DESC[self.state]),
            (f"{prefix}CallerIDNum", self.caller_num),
            (f"{prefix}CallerIDName", self.caller_name),
            (f"{prefix}ConnectedLineNum", self.connected_num),
            (f"{prefix}ConnectedLineName", self.connected_name),
            (f"{prefix}Language", "en"),
            (f"{prefix}AccountCode", ""),
            (f"{prefix}Context", self.context),
            (f"{prefix}Exten", self.exten),
            (f"{prefix}Priority", str(self.priority)),
            (f"{prefix}Uniqueid", self.uniqueid),
            (f"{prefix}Linkedid", self.linkedid),
        ]

    def seconds(self) -> int:
        return int(time.monotonic() - self.created)


@dataclass
class Bridge:
    """A two-party bridge made by Dial when the dialed leg answers."""

    uniqueid: str = field(default_factory=lambda: str(uuid.uuid4()))
    members: int = 0

    def snapshot(self) -> list[Header]:
        return [
            ("BridgeUniqueid", self.uniqueid),
            ("BridgeType", "basic"),
            ("BridgeTechnology", "simple_bridge"),
            ("BridgeCreator", "<unknown>"),
            ("BridgeName", "<unknown>"),
            ("BridgeNumChannels", str(self.members)),
            ("BridgeVideoSourceMode", "none"),
        ]


class Numbering:
    """Channel-name suffixes (one hex counter for all technologies) and Uniqueids.

    A restart starts both counters again from 0: names repeat, Uniqueids do not, because
    their first part is the creation time, which ``after`` keeps past the old run's.
    """

    def __init__(self, after: int = 0) -> None:
        self._names = itertools.count()
        self._ids = itertools.count()
        self.last_epoch = after

    def suffix(self) -> str:
        return f"{next(self._names):08x}"

    def uniqueid(self) -> str:
        self.last_epoch = max(int(time.time()), self.last_epoch)
        return f"{self.last_epoch}.{next(self._ids)}"


def event(name: str, privilege: str, *parts: list[Header] | Header) -> list[Header]:
    """An event: ``Event``, ``Privilege``, then the given headers and header lists."""
    headers: list[Header] = [("Event", name), ("Privilege", privilege)]
    for part in parts:
        headers.extend(part if isinstance(part, list) else [part])
    return headers


def channel_event(name: str, chan: Channel, *extra: Header) -> list[Header]:
    """A call-class event about one channel (Newchannel, Newstate, Hangup ...)."""
    return event(name, "call,all", chan.snapshot(), *extra)


def hangup_event(chan: Channel, cause: int) -> list[Header]:
    """Hangup with the cause and its text (``Unknown`` for codes without one here)."""
    text = CAUSE_TEXT.get(cause, "Unknown")
    return channel_event("Hangup", chan, ("Cause", str(cause)), ("Cause-txt", text))


def dial_event(name: str, caller: Channel, dest: Channel, *extra: Header) -> list[Header]:
    """DialBegin / DialState / DialEnd: the caller's snapshot, then the dialed leg's."""
    return event(name, "call,all", caller.snapshot(), dest.snapshot("Dest"), *extra)


def bridge_event(name: str, bridge: Bridge, chan: Channel | None = None) -> list[Header]:
    return event(name, "call,all", bridge.snapshot(), chan.snapshot() if chan else [])


def user_event(chan: Channel, user_event_name: str, *body: Header) -> list[Header]:
    """What the UserEvent application sends: the snapshot, ``UserEvent``, then the body."""
    return event("UserEvent", "user,all", chan.snapshot(), ("UserEvent", user_event_name), *body)


def core_show_channel(chan: Channel, action_id: str) -> list[Header]:
    """A CoreShowChannel list item: ActionID on the second line, no Privilege."""
    seconds = chan.seconds()
    duration = f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    headers: list[Header] = [("Event", "CoreShowChannel")]
    headers += [("ActionID", action_id)] if action_id else []
    return [
        *headers,
        *chan.snapshot(),
        ("Application", chan.application),
        ("ApplicationData", chan.app_data),
        ("Duration", duration),
        ("BridgeId", chan.bridge_id),
    ]


def status_item(chan: Channel, variables: list[Header], action_id: str) -> list[Header]:
    """A Status list item: ``Privilege: Call``, the variables, and the ActionID last."""
    codec = "ulaw" if chan.tech == "PJSIP" else "slin"
    return [
        ("Event", "Status"),
        ("Privilege", "Call"),
        *chan.snapshot(),
        ("Type", chan.tech),
        ("DNID", ""),
        ("EffectiveConnectedLineNum", chan.connected_num),
        ("EffectiveConnectedLineName", chan.connected_name),
        ("TimeToHangup", "0"),
        ("BridgeID", chan.bridge_id),
        ("Application", chan.application),
        ("Data", chan.app_data),
        ("Nativeformats", f"({codec})"),
        ("Readformat", codec),
        ("Readtrans", ""),
        ("Writeformat", codec),
        ("Writetrans", ""),
        ("Callgroup", "0"),
        ("Pickupgroup", "0"),
        ("Seconds", str(chan.seconds())),
        *[("Variable", f"{name}={value}") for name, value in variables],
        *([("ActionID", action_id)] if action_id else []),
    ]


# Events a real Asterisk also sends to a user with the call class, though the worker never
# acts on them (trace-2, trace-11): what makes a call cost about 48 events there.


def identity_events(chan: Channel) -> list[list[Header]]:
    """NewCallerid and NewConnectedLine, as Asterisk sends them for a new channel."""
    presentation = ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")
    return [
        channel_event("NewCallerid", chan, presentation),
        channel_event("NewConnectedLine", chan),
    ]


def device_state(chan: Channel, state: str) -> list[Header]:
    """DeviceStateChange of the channel's device (its name without ``-suffix;N``)."""
    device = chan.name.rpartition("-")[0] or chan.name
    return event("DeviceStateChange", "call,all", ("Device", device), ("State", state))


def local_bridge(one: Channel, two: Channel) -> list[Header]:
    """LocalBridge: the ``;1`` and ``;2`` halves of a new Local channel."""
    return event(
        "LocalBridge",
        "call,all",
        [(f"LocalOne{key}", value) for key, value in one.snapshot()],
        [(f"LocalTwo{key}", value) for key, value in two.snapshot()],
        ("Context", two.context),
        ("Exten", two.exten),
        ("LocalOptimization", "Yes"),
    )
