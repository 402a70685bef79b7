#!/usr/bin/env python3
"""The worker's CPU for one call's AMI events, with and without the manager.conf filter.

    python3 bench/ami_event_cost.py [--trace ../shared/asterisk-ami-traces/trace-2-...jsonl]

Replays the events a real Asterisk 22 sent a ``call,user,system`` user for one recorded
call (the trace's first connection; dialplan and security classes left out, as that
user does not read them) into the worker's AMI protocol, and into panoramisk's own for
comparison, as one chunk per call, many times over; prints microseconds of CPU per call.
"With the filter" replays only what the shipped eventfilter lets through. No sockets, no
event loop: this isolates the cost of reading events from everything else a call costs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``adapter`` and ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from panoramisk.ami_protocol import AMIProtocol

from adapter.asterisk.connection import _Protocol

REPO = Path(__file__).resolve().parent.parent
TRACE = Path("shared", "asterisk-ami-traces", "trace-2-transfer-remote-hangup.jsonl")
# ../shared/ next to the repository (or to the directory of its work trees).
DEFAULT_TRACE = next(
    (base / TRACE for base in (REPO.parent, REPO.parent.parent) if (base / TRACE).exists()),
    REPO.parent / TRACE,
)
HANDLED = frozenset({"UserEvent", "Hangup"})  # the worker's handlers
PASSED = ("Event: UserEvent\r\n", "Event: Hangup\r\n", "Event: FullyBooted\r\n")


class _Manager:
    """What the protocol calls back: dispatch does nothing (handlers are not measured)."""

    def __init__(self, wanted: frozenset[str] | None) -> None:
        self.wanted_events = wanted

    def dispatch(self, _event: Any) -> None:
        return None


def recorded_events(trace: Path) -> list[str]:
    rows = [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]
    first = rows[0]["conn"]
    return [
        row["raw"]
        for row in rows
        if row["conn"] == first
        and row["dir"] == "S2C"
        and row["raw"].startswith("Event:")
        and "Privilege: dialplan" not in row["raw"]
        and "Privilege: security" not in row["raw"]
    ]


def cost_per_call(protocol_class: type[AMIProtocol], events: list[str], rounds: int) -> float:
    """Microseconds of CPU to read one call's ``events`` (best of three runs)."""
    wanted = HANDLED if protocol_class is _Protocol else None
    data = "".join(events).encode()
    best = float("inf")
    for _ in range(3):
        protocol = protocol_class.__new__(protocol_class)
        AMIProtocol.connection_made(protocol, None)
        manager = _Manager(wanted)
        protocol.factory = protocol._manager = manager
        protocol.skipped, protocol.version, protocol.encoding = 0, "11.0.0", "utf8"
        started = time.process_time()
        for _ in range(rounds):
            protocol.data_received(data)
        best = min(best, (time.process_time() - started) / rounds)
    return best * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else "")
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE, help="a recorded .jsonl")
    parser.add_argument("--rounds", type=int, default=2000, help="calls replayed per run")
    args = parser.parse_args()
    events = recorded_events(args.trace)
    passed = [event for event in events if event.startswith(PASSED)]
    print(f"{args.trace.name}: {len(events)} events a call, {len(passed)} through the filter")
    for label, protocol_class, stream in (
        ("panoramisk's own parsing, no filter", AMIProtocol, events),
        ("the worker, no filter", _Protocol, events),
        ("panoramisk's own parsing, with the filter", AMIProtocol, passed),
        ("the worker, with the filter", _Protocol, passed),
    ):
        micros = cost_per_call(protocol_class, stream, args.rounds)
        print(f"  {label:42s} {micros:7.1f} µs of CPU per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
