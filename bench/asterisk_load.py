"""The AMI load of bench/asterisk_worker.py: what a real Asterisk sends per call.

``recorded`` (the default) is the call of the recordings in ../shared/asterisk-ami-traces/
(trace-2, trace-11): the caller is the ``;2`` half of a Local channel and the
GenerativeAgent number is dialed as ``Local/<number>@fake-pstn``, so the fake sends the
whole stream a real Asterisk 22 sends a user reading ``call,user,system``: about 50
events per call (Newchannel, NewCallerid, NewConnectedLine, LocalBridge, Newstate,
DeviceStateChange, Dial*, Bridge*, HangupRequest, SoftHangupRequest, Hangup, MusicOnHold*,
the two UserEvents). ``lean`` is the smaller stream of a PJSIP caller dialing a PJSIP trunk
(about 25 events): what this benchmark measured before.

``filtered`` (the default) gives the worker's user the eventfilter lines of
asterisk_conf/manager_genagent.conf, applied as Asterisk applies them; ``unfiltered``
leaves them out, as an admin who skipped them would.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.fake_ami.server import FakeAsterisk

LOADS = ("recorded", "lean")
AMI_USERNAME = "genagent-adapter"


@dataclass(frozen=True, slots=True)
class Load:
    """How the fake shapes each call of a wave, and what the worker's user receives."""

    kind: str = "recorded"
    filtered: bool = True

    @property
    def local(self) -> bool:
        """Callers are Local channels (and so are the dialed legs)."""
        return self.kind == "recorded"

    def describe(self) -> str:
        calls = (
            "Local callers dialing Local legs (the recordings' call)"
            if self.local
            else "PJSIP callers dialing a PJSIP trunk"
        )
        events = "the shipped eventfilter" if self.filtered else "no eventfilter"
        return f"{self.kind} load: {calls}; the worker's AMI user with {events}"

    def apply(self, fake: FakeAsterisk) -> None:
        """Configure ``fake`` (its dial globals and the worker's account) for this load."""
        if self.local:
            fake.pbx.globals.update(GA_DIAL_PREFIX="Local/", GA_DIAL_SUFFIX="@fake-pstn")
        if not self.filtered:
            fake.accounts[AMI_USERNAME] = fake.accounts[AMI_USERNAME].unfiltered()


class EventCount:
    """Events the fake emitted, and those it wrote to a session (after privileges and
    event filters), over one wave."""

    def __init__(self) -> None:
        self.emitted = 0
        self.delivered = 0

    def reset(self) -> None:
        self.emitted = self.delivered = 0

    def per_call(self, calls: int) -> dict[str, float]:
        calls = max(1, calls)
        return {"emitted": self.emitted / calls, "delivered": self.delivered / calls}
