"""The fake Asterisk of bench/asterisk_worker.py, in its own process and event loop.

    python -m bench.asterisk.fake --ami-port P --control-port C --sandbox URL
        [--load recorded|lean] [--unfiltered]

Runs ``tests.fake_ami.server.FakeAsterisk`` (the shipped dialplan, the least-privilege
``genagent-adapter`` user of asterisk_conf/manager_genagent.conf with the secret
``worker-secret``) on 127.0.0.1:P, shaping calls as ``bench/asterisk_load.py`` says
(by default the recordings' call, about 50 events, and the shipped event filter), and a
control channel on 127.0.0.1:C: one JSON object
per line in, one JSON object per line out.

- ``{"cmd": "status"}``: logins, resyncs (CoreShowChannels seen), live channels.
- ``{"cmd": "wave", "calls": N, "window": W, "hold": H, "talk": T, "hangup_after": A,
  "timeout": S}``: N callers, handed off evenly over W seconds; each dial is answered by
  GenerativeAgent (the sandbox's ``/sandbox/calls``), held H seconds after that caller's
  hand-off, completed on the sandbox (AGENT), then ``DialOutcome("ANSWER", talk=T)``; a
  caller Redirected into a route context hangs up A seconds later. The answer comes once
  every caller has hung up (or after S seconds): per-call timestamps, the peaks of calls
  in flight and in the dial, the events per call (emitted, and written to a session after
  privileges and filters), and this process's event-loop lag.
- ``{"cmd": "quit"}``.

Timestamps are ``time.monotonic()``: a UserEvent's when the fake writes it to the
worker's socket, an action's when the fake starts handling it (so a busy fake makes the
worker look slower, never faster; the loop lag it reports bounds that error).

For speed only (the calls and the wire traffic are unchanged): channels are found by name
and Uniqueid through an index instead of a scan of every channel, the actions and events
the fake records for tests are not kept, the sandbox is called over a minimal HTTP client,
and the garbage collector is paused during a wave (a full collection stalled the loop for
up to 75 ms, charged to the worker) and run between waves.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bench.asterisk_load import LOADS, EventCount, Load
from tests.fake_ami.codec import Header, Message, encode
from tests.fake_ami.model import Channel
from tests.fake_ami.pbx import Caller, DialOutcome
from tests.fake_ami.server import FakeAsterisk, Session

HOST = "127.0.0.1"
DIAL_CONTEXT = "genagent-dial"
ROUTE_CONTEXTS = frozenset({"genagent-agent", "genagent-system", "genagent-fallback"})
HANDOFF_EVENT = "GenerativeAgentTransfer"
RETURNED_EVENT = "GenerativeAgentReturned"
# What GenerativeAgent says when it hangs up (as the tests' AGENT leg).
AGENT_OUTPUT = {
    "transferType": "AGENT",
    "currentTaskName": "billing",
    "transferVariables": {"reason": "dispute"},
    "referenceVariables": {"account-id": "42"},
}
LAG_PERIOD = 0.005
HTTP_TIMEOUT = 10.0


@dataclass
class CallTrack:
    """One caller of a wave, as the fake saw it (monotonic seconds)."""

    index: int
    uniqueid: str
    name: str
    handoff_at: float | None = None
    first_action_at: float | None = None
    first_action: str = ""
    dial_redirect_at: float | None = None
    dial_started_at: float | None = None
    transfer_id: str = ""
    returned_at: float | None = None
    dial_status: str = ""
    return_action_at: float | None = None
    return_action: str = ""
    routed_at: float | None = None
    route_context: str = ""
    ended_at: float | None = None
    actions: int = 0
    errors: list[str] = field(default_factory=list)
    # Every decision's actions, to tell one carried out twice (by one worker or two):
    # each Redirect as "<context> <GA_TRANSFER_ID set before it>" (a retry is a new
    # transfer, so a new decision), and Setvars of one variable repeated before a Redirect.
    decisions: list[str] = field(default_factory=list)
    repeated_setvars: int = 0
    acting_sessions: list[int] = field(default_factory=list)  # AMI sessions, first first
    _transfer_id: str = ""
    _set_since_redirect: list[str] = field(default_factory=list)


class _IndexedChannels(list[Channel]):
    """The PBX's channel list, with lookups by lower-case name and by Uniqueid."""

    def __init__(self) -> None:
        super().__init__()
        self.by_name: dict[str, Channel] = {}
        self.by_uniqueid: dict[str, Channel] = {}

    def append(self, channel: Channel) -> None:
        super().append(channel)
        self.by_name[channel.name.lower()] = channel
        self.by_uniqueid[channel.uniqueid] = channel

    def extend(self, channels: Iterable[Channel]) -> None:
        for channel in channels:
            self.append(channel)

    def __contains__(self, channel: object) -> bool:
        # By identity: a dataclass == compares every field of every channel.
        return isinstance(channel, Channel) and self.by_uniqueid.get(channel.uniqueid) is channel

    def remove(self, channel: Channel) -> None:
        for position, item in enumerate(self):
            if item is channel:
                del self[position]
                break
        else:
            raise ValueError("not a live channel")
        if self.by_name.get(channel.name.lower()) is channel:
            del self.by_name[channel.name.lower()]
        if self.by_uniqueid.get(channel.uniqueid) is channel:
            del self.by_uniqueid[channel.uniqueid]


class SandboxHttp:
    """A minimal keep-alive HTTP/1.1 client for the sandbox's control endpoints.

    httpx would cost this process more CPU than all of its AMI work; this sends a JSON POST
    and reads a Content-Length answer (what gunicorn and Flask send), nothing more.
    """

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or HOST
        self.port = parts.port or 80
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        """POST ``body`` as JSON; the status and the decoded JSON answer."""
        payload = json.dumps(body).encode()
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload
        for _ in range(2):  # a kept-alive connection the server closed: once more, afresh
            reused = bool(self._idle)
            reader, writer = (
                self._idle.pop() if reused else await asyncio.open_connection(self.host, self.port)
            )
            try:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
            except (OSError, asyncio.IncompleteReadError):
                writer.close()
                if reused:
                    continue
                raise
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in lines[1:] if line)
            }
            data = await reader.readexactly(int(headers.get("content-length", "0")))
            if headers.get("connection", "").lower() == "close":
                writer.close()
            else:
                self._idle.append((reader, writer))
            return status, json.loads(data) if data else None
        raise ConnectionError("the sandbox closed the connection")

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


class BenchAsterisk(FakeAsterisk):
    """FakeAsterisk plus per-call timestamps, the wave driver, and indexed look-ups."""

    def __init__(self, sandbox_url: str, load: Load) -> None:
        super().__init__(dial_handler=self._play_agent)
        self.load = load
        load.apply(self)
        self.event_count = EventCount()
        self.http = SandboxHttp(sandbox_url)
        self.tracks: dict[str, CallTrack] = {}  # by Uniqueid and by lower-case name
        self.callers: dict[str, Caller] = {}  # by Uniqueid, callers of the current wave
        self.logins = 0
        self.resyncs = 0
        self.in_flight = 0
        self.in_dial = 0
        self.peak_in_flight = 0
        self.peak_in_dial = 0
        self.hold = 0.0
        self.talk = 0.02
        self.hangup_after = 0.05
        self.lags: list[float] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._index_pbx()

    def _index_pbx(self) -> None:
        channels = _IndexedChannels()
        channels.extend(self.pbx.channels)
        self.pbx.channels = channels

        def find(name: str) -> Channel | None:
            return channels.by_name.get(name.lower()) or channels.by_uniqueid.get(name)

        def caller_of(channel: Channel) -> Caller | None:
            caller = self.callers.get(channel.uniqueid)
            return caller if caller is not None and caller.channel is channel else None

        self.pbx.find = find  # type: ignore[method-assign]
        self.pbx.caller_of = caller_of  # type: ignore[method-assign]

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- what the worker sends ---------------------------------------------------------

    async def _handle(self, session: Session, message: Message) -> None:
        now = time.monotonic()
        name = message.get("Action").lower()
        channel = message.get("Channel")
        track = None
        if channel:
            track = self.tracks.get(channel) or self.tracks.get(channel.lower())
        await super()._handle(session, message)
        self.actions.clear()  # kept by FakeAsterisk for the tests: not needed here
        if name == "login" and session.account is not None:
            self.logins += 1
        elif name == "coreshowchannels":
            self.resyncs += 1
        if track is not None:
            self._on_action(track, name, message, now)
            if name in ("setvar", "redirect"):
                self._count_decision(track, session, name, message)

    @staticmethod
    def _count_decision(track: CallTrack, session: Session, name: str, message: Message) -> None:
        if session.id not in track.acting_sessions:
            track.acting_sessions.append(session.id)
        if name == "redirect":
            track.decisions.append(f"{message.get('Context')} {track._transfer_id}")
            track._set_since_redirect.clear()
            return
        variable = message.get("Variable")
        if variable in track._set_since_redirect:
            track.repeated_setvars += 1
        track._set_since_redirect.append(variable)
        if variable == "GA_TRANSFER_ID":
            track._transfer_id = message.get("Value")

    def _on_action(self, track: CallTrack, name: str, message: Message, now: float) -> None:
        track.actions += 1
        if track.first_action_at is None:
            track.first_action_at, track.first_action = now, message.get("Action")
        if (
            track.returned_at is not None
            and track.return_action_at is None
            and name in ("setvar", "redirect")
        ):
            track.return_action_at, track.return_action = now, message.get("Action")
        if name != "redirect":
            return
        context = message.get("Context")
        if context == DIAL_CONTEXT and track.dial_redirect_at is None:
            track.dial_redirect_at = now
        elif context in ROUTE_CONTEXTS and track.routed_at is None:
            track.routed_at, track.route_context = now, context
            self._left(track)
            caller = self.callers.get(track.uniqueid)
            if caller is not None:
                self._spawn(self._hang_up_later(caller))

    async def _hang_up_later(self, caller: Caller) -> None:
        await asyncio.sleep(self.hangup_after)
        if not caller.gone:
            await caller.hang_up()

    def _left(self, track: CallTrack) -> None:
        """The call is no longer in flight (routed, or ended before that)."""
        self.in_flight -= 1

    # --- what the fake sends -----------------------------------------------------------

    def _broadcast(self, headers: list[Header]) -> None:
        # As FakeAsterisk._broadcast, without keeping every event for the tests.
        privilege = ""
        event = ""
        uniqueid = ""
        user_event = ""
        for key, value in headers:
            if key == "Event" and not event:
                event = value
            elif key == "Privilege" and not privilege:
                privilege = value
            elif key == "Uniqueid" and not uniqueid:
                uniqueid = value
            elif key == "UserEvent":
                user_event = value
        now = time.monotonic()
        raw = encode(headers)
        self.event_count.emitted += 1
        for session in self.sessions:
            self.event_count.delivered += session.send_event(privilege, raw)
        track = self.tracks.get(uniqueid) if uniqueid else None
        if track is None:
            return
        if event == "UserEvent" and user_event == HANDOFF_EVENT:
            track.handoff_at = now
        elif event == "UserEvent" and user_event == RETURNED_EVENT:
            track.returned_at = now
            track.dial_status = dict(headers).get("DialStatus", "")
            self.in_dial -= 1
        elif event == "Hangup":
            track.ended_at = now
            if track.routed_at is None:
                track.errors.append("hung up before it was routed")
                self._left(track)

    # --- GenerativeAgent's side --------------------------------------------------------

    async def _play_agent(self, caller: Caller, number: str) -> DialOutcome:
        """The dial reaches GenerativeAgent: connect, talk until released, complete."""
        track = self.tracks[caller.uniqueid]
        track.dial_started_at = time.monotonic()
        self.in_dial += 1
        self.peak_in_dial = max(self.peak_in_dial, self.in_dial)
        try:
            status, answer = await asyncio.wait_for(
                self.http.post("/sandbox/calls", {"transferNumber": number}), HTTP_TIMEOUT
            )
            if status != 200:
                track.errors.append(f"sandbox connect answered {status}")
                return DialOutcome("CHANUNAVAIL")
            track.transfer_id = str(answer["id"])
            release_at = (track.handoff_at or track.dial_started_at) + self.hold
            await asyncio.sleep(max(0.0, release_at - time.monotonic()))
            status, _ = await asyncio.wait_for(
                self.http.post(f"/sandbox/transfers/{track.transfer_id}/complete", AGENT_OUTPUT),
                HTTP_TIMEOUT,
            )
            if status != 200:
                track.errors.append(f"sandbox complete answered {status}")
        except (OSError, ValueError, KeyError, TimeoutError, asyncio.IncompleteReadError) as exc:
            track.errors.append(f"sandbox: {type(exc).__name__}: {exc}")
            return DialOutcome("CHANUNAVAIL")
        return DialOutcome("ANSWER", talk=self.talk)

    # --- the wave ------------------------------------------------------------------------

    async def run_wave(self, request: dict[str, Any]) -> dict[str, Any]:
        """Hand ``calls`` callers off over ``window`` seconds; answer once all have ended."""
        self.hold = float(request["hold"])
        self.talk = float(request["talk"])
        self.hangup_after = float(request["hangup_after"])
        self.tracks.clear()
        self.callers.clear()
        self.pbx.callers = [c for c in self.pbx.callers if not c.gone]
        self.actions.clear()
        self.events.clear()
        self.in_flight = self.in_dial = self.peak_in_flight = self.peak_in_dial = 0
        self.event_count.reset()
        # A full collection of this process's objects stalls its loop for tens of ms,
        # which would be charged to the worker: collect now, not during the wave.
        gc.collect()
        gc.disable()
        try:
            self.lags = []
            started = time.monotonic()
            tracks = await self._hand_off(int(request["calls"]), float(request["window"]))
            handed_off = time.monotonic() - started
            deadline = started + float(request["timeout"])
            while time.monotonic() < deadline and any(t.ended_at is None for t in tracks):
                await asyncio.sleep(0.05)
            unfinished = [t for t in tracks if t.ended_at is None]
            for track in unfinished:
                track.errors.append("not ended when the wave timed out")
                caller = self.callers.get(track.uniqueid)
                if caller is not None and not caller.gone:
                    await caller.hang_up()
            wave_seconds = time.monotonic() - started
        finally:
            gc.enable()
        lags = sorted(self.lags)
        return {
            "ok": True,
            "calls": [asdict(t) for t in tracks],
            "handoff_seconds": handed_off,
            "wave_seconds": wave_seconds,
            "peak_in_flight": self.peak_in_flight,
            "peak_in_dial": self.peak_in_dial,
            "unfinished": len(unfinished),
            "events_per_call": self.event_count.per_call(len(tracks)),
            "lag_ms": {
                "p50": 1000 * lags[len(lags) // 2] if lags else 0.0,
                "p99": 1000 * lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else 0.0,
                "max": 1000 * lags[-1] if lags else 0.0,
            },
        }

    async def _hand_off(self, calls: int, window: float) -> list[CallTrack]:
        """New callers in the IVR, each handed off at its moment of the window."""
        tracks: list[CallTrack] = []
        started = time.monotonic()
        for index in range(calls):
            delay = started + index * window / calls - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            caller = self.new_caller(
                {"GA_TASK": "call_routing", "GA_IV_accountNumber": f"{index:06d}"},
                endpoint="bench",
                caller_id=(f"1555{index:07d}", "Bench Caller"),
                local=self.load.local,
            )
            track = CallTrack(index, caller.uniqueid, caller.name)
            tracks.append(track)
            self.callers[caller.uniqueid] = caller
            self.tracks[caller.uniqueid] = track
            self.tracks[caller.name.lower()] = track
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            caller.hand_off()
        return tracks

    async def watch_lag(self) -> None:
        """How late this loop wakes up: the bound on the error of the fake's timestamps."""
        while True:
            before = time.monotonic()
            await asyncio.sleep(LAG_PERIOD)
            self.lags.append(max(0.0, time.monotonic() - before - LAG_PERIOD))

    def status(self) -> dict[str, Any]:
        return {
            "ok": True,
            "logins": self.logins,
            "resyncs": self.resyncs,
            "sessions": len(self.sessions),
            "channels": len(self.pbx.channels),
        }


async def serve(args: argparse.Namespace) -> None:
    fake = BenchAsterisk(args.sandbox, Load(args.load, filtered=not args.unfiltered))
    fake.port = args.ami_port
    await fake.start()
    lag = asyncio.get_running_loop().create_task(fake.watch_lag())
    stopped = asyncio.Event()

    async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                request = json.loads(line)
                command = request.get("cmd")
                if command == "wave":
                    answer = await fake.run_wave(request)
                elif command == "status":
                    answer = fake.status()
                elif command == "quit":
                    answer = {"ok": True}
                    stopped.set()
                else:
                    answer = {"ok": False, "error": f"unknown command {command!r}"}
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
                if stopped.is_set():
                    break
        finally:
            writer.close()

    server = await asyncio.start_server(control, HOST, args.control_port)
    print(f"fake AMI on {HOST}:{fake.port}, control on {HOST}:{args.control_port}", flush=True)
    try:
        await stopped.wait()
    finally:
        lag.cancel()
        server.close()
        fake.http.close()
        await fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="fake Asterisk for bench/asterisk_worker.py")
    parser.add_argument("--ami-port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--sandbox", required=True, help="the sandbox's base URL")
    parser.add_argument("--load", choices=LOADS, default="recorded", help="calls' event stream")
    parser.add_argument(
        "--unfiltered", action="store_true", help="the worker's user without eventfilter"
    )
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
