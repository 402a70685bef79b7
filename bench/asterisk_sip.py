"""What a SIP hand-off costs the Asterisk worker: AMI actions per call and the time from
each event to the worker's action, per transfer mode and return.

    python3 bench/asterisk_sip.py [--calls 50] [--headers 10]

In one process and one event loop (unlike bench/asterisk_worker.py): the real worker, the
fake Asterisk of tests/fake_ami over loopback TCP, and the sandbox (for sip-api) in its
own thread. Callers are handed off one at a time, so each latency is one call's alone.
Each caller carries ``--headers`` input variables of 20 characters (sip-headers sends them
as X-GA-iv-* headers). The latency is the worker's own event-to-action histogram
(``genagent_ami_event_action_seconds``): from reading the event to the action that
follows it (the Redirect into genagent-sip-dial, or the route's Redirect), the API's time
included in sip-api mode. Writes bench/results/asterisk_sip.md.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import tempfile
import time
from collections import Counter
from pathlib import Path

from adapter.flow import FlowPolicy
from adapter.observe.metrics import AMI_EVENT_ACTION
from adapter.sandbox import SandboxConfig, SandboxServer
from tests.asterisk_rig import AGENT, running_rig
from tests.asterisk_sip_rig import SipLeg
from tests.conftest import API_ID, API_SECRET
from tests.test_asterisk_sip import API, HEADERS, IVR

RESULTS = Path(__file__).parent / "results" / "asterisk_sip.md"
CASES: list[tuple[str, FlowPolicy, str, str]] = [
    ("sip-headers", HEADERS, "refer", "referred"),
    ("sip-api", API, "refer", "referred"),
    ("sip-api", API, "bye", "returned"),
]


def histogram(event: str) -> tuple[float, float]:
    """(sum of seconds, count) of the event-to-action histogram for ``event``."""
    samples = AMI_EVENT_ACTION.labels(event).collect()[0].samples
    total = next(s.value for s in samples if s.name.endswith("_sum"))
    count = next(s.value for s in samples if s.name.endswith("_count"))
    return total, count


async def one_case(policy: FlowPolicy, ending: str, calls: int, headers: int) -> dict[str, float]:
    sandbox = SandboxServer(SandboxConfig(api_id=API_ID, api_secret=API_SECRET)).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with running_rig(sandbox, Path(tmp), flow=policy) as rig:
                ivs = {f"GA_IV_v{i}": "x" * 20 for i in range(headers)}
                before = {e: histogram(e) for e in ("handoff", "referred", "returned")}
                started = time.monotonic()
                for _ in range(calls):
                    caller = rig.sip_caller(SipLeg(ending=ending, output=AGENT), **IVR, **ivs)
                    caller.hand_off()
                    await caller.wait_until("genagent-agent", timeout=60)
                wall = time.monotonic() - started
                actions = Counter(a.name for a in rig.fake.actions if a.name != "Ping")
    finally:
        sandbox.stop()
    row = {f"{name} per call": actions[name] / calls for name in ("Setvar", "Getvar", "Redirect")}
    for event, (total0, count0) in before.items():
        total, count = histogram(event)
        if count > count0:
            row[f"{event} ms"] = (total - total0) / (count - count0) * 1000
    row["calls per s"] = calls / wall
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--headers", type=int, default=10)
    args = parser.parse_args()
    lines = [
        f"# Asterisk worker, SIP hand-offs ({time.strftime('%Y-%m-%d')})",
        "",
        f"{args.calls} callers one at a time, {args.headers} input variables each; "
        f"Python {platform.python_version()}, one process and event loop.",
        "",
        "| mode | return | Setvar / Getvar / Redirect per call | hand-off ms (mean) "
        "| return ms (mean) | calls/s |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for mode, policy, ending, event in CASES:
        row = asyncio.run(one_case(policy, ending, args.calls, args.headers))
        per_call = " / ".join(
            f"{row[f'{n} per call']:.1f}" for n in ("Setvar", "Getvar", "Redirect")
        )
        lines.append(
            f"| {mode} | {ending.upper()} | {per_call} | {row.get('handoff ms', 0):.1f} "
            f"| {row.get(f'{event} ms', 0):.1f} | {row['calls per s']:.0f} |"
        )
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
