"""One wave's per-call timings lined up with the sandbox's, and their statistics."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.asterisk.config import ROUTE_EXPECTED
from bench.asterisk.machine import ProcStatus, touched


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 1,000 values is the 990th smallest)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Summary:
    count: int
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        return cls(
            len(values),
            percentile(values, 50),
            percentile(values, 90),
            percentile(values, 99),
            max(values) if values else math.nan,
        )


# --- one wave ----------------------------------------------------------------------------


@dataclass
class Wave:
    """The measurements of one wave."""

    number: int
    calls: int
    handoff_ms: list[float] = field(default_factory=list)
    dial_end_raw_ms: list[float] = field(default_factory=list)
    dial_end_api_ms: list[float] = field(default_factory=list)
    dial_end_ms: list[float] = field(default_factory=list)
    to_dial_net_ms: list[float] = field(default_factory=list)
    # Diagnostic: without the calls whose measurement overlapped a machine stall.
    handoff_clean_ms: list[float] = field(default_factory=list)
    dial_end_clean_ms: list[float] = field(default_factory=list)
    stalls_ms: list[float] = field(default_factory=list)
    problems: Counter[str] = field(default_factory=Counter)
    peak_in_flight: int = 0
    peak_in_dial: int = 0
    handoff_seconds: float = 0.0
    wave_seconds: float = 0.0
    fake_lag_ms: dict[str, float] = field(default_factory=dict)
    after: ProcStatus | None = None
    worker_cpu_ms: float = 0.0  # per call
    fake_cpu_ms: float = 0.0
    sandbox_cpu_ms: float = 0.0
    busy_pct: float = 0.0  # the whole machine, every CPU = 100 %
    others_pct: float = 0.0  # of which processes other than the three of the run
    steal_pct: float = 0.0
    worker_major_faults: int = 0  # page faults that waited for the disk, during the wave
    machine_major_faults: int = 0
    redis_cpu_ms: float = 0.0
    # Calls on which a decision was carried out more than once (a Setvar or a Redirect
    # repeated), and how many calls each AMI session acted on.
    acted_twice: int = 0
    calls_per_session: dict[str, int] = field(default_factory=dict)


def analyse(
    number: int,
    answer: dict[str, Any],
    timings: list[dict[str, Any]],
    stalls: Sequence[tuple[float, float]] = (),
) -> Wave:
    """Line the fake's per-call timestamps up with the sandbox's API timings."""
    calls: list[dict[str, Any]] = answer["calls"]
    wave = Wave(
        number=number,
        calls=len(calls),
        peak_in_flight=int(answer["peak_in_flight"]),
        peak_in_dial=int(answer["peak_in_dial"]),
        handoff_seconds=float(answer["handoff_seconds"]),
        wave_seconds=float(answer["wave_seconds"]),
        fake_lag_ms=dict(answer["lag_ms"]),
        stalls_ms=[(s1 - s0) * 1000 for s0, s1 in stalls],
    )
    gets: dict[str, list[tuple[float, float]]] = {}
    creates: dict[str, list[tuple[float, float]]] = {}
    for row in timings:
        if row["status"] >= 400:
            wave.problems[f"API answered {row['status']}"] += 1
        spans = creates if row["method"] == "POST" else gets
        spans.setdefault(row["transferId"], []).append((row["ready"], row["end"]))
    for call in calls:
        for error in call["errors"]:
            wave.problems[error] += 1
        handoff, first = call["handoff_at"], call["first_action_at"]
        if handoff is None or first is None:
            wave.problems["no action after the hand-off"] += 1
            continue
        wave.handoff_ms.append((first - handoff) * 1000)
        if not touched(handoff, first, stalls):
            wave.handoff_clean_ms.append((first - handoff) * 1000)
        transfer_id = f"{call['uniqueid']}-1"
        if call["dial_redirect_at"] is not None:
            api = _api_seconds(creates.get(transfer_id, []), handoff, call["dial_redirect_at"])
            if api is not None:
                wave.to_dial_net_ms.append((call["dial_redirect_at"] - handoff - api) * 1000)
        returned, acted = call["returned_at"], call["return_action_at"]
        if call["dial_status"] != "ANSWER":
            wave.problems[f"dial ended {call['dial_status'] or 'never'}"] += 1
        if returned is None or acted is None:
            wave.problems["no action after the dial ended"] += 1
            continue
        raw = acted - returned
        api = _api_seconds(gets.get(transfer_id, []), returned, acted)
        if api is None:
            wave.problems["no API timing for the context fetch"] += 1
            continue
        wave.dial_end_raw_ms.append(raw * 1000)
        wave.dial_end_api_ms.append(api * 1000)
        wave.dial_end_ms.append((raw - api) * 1000)
        if not touched(returned, acted, stalls):
            wave.dial_end_clean_ms.append((raw - api) * 1000)
        if call["route_context"] != ROUTE_EXPECTED:
            wave.problems[f"routed to {call['route_context'] or 'nowhere'}"] += 1
        if call["ended_at"] is None:
            wave.problems["did not end"] += 1
    for call in calls:
        if _acted_twice(call):
            wave.acted_twice += 1
    sessions = Counter(str(c["acting_sessions"][0]) for c in calls if c["acting_sessions"])
    wave.calls_per_session = dict(sorted(sessions.items()))
    if int(answer["unfinished"]):
        wave.problems["wave timed out"] += 1
    return wave


def _acted_twice(call: dict[str, Any]) -> bool:
    """A decision's Redirect sent twice (same context, same transfer), or one of its
    Setvars repeated before its Redirect."""
    decisions: list[str] = call["decisions"]
    return len(decisions) != len(set(decisions)) or call["repeated_setvars"] > 0


def _api_seconds(spans: list[tuple[float, float]], after: float, before: float) -> float | None:
    """Total sandbox time of the requests made for one call between two of its events."""
    # The sandbox may note its end a little after the worker already acted on the answer
    # (the thread lost the GIL after writing): the API's time stops at the action.
    inside = [min(end, before) - ready for ready, end in spans if after <= ready <= before]
    return sum(inside) if inside else None


def print_wave(wave: Wave) -> None:
    hand, dial = Summary.of(wave.handoff_ms), Summary.of(wave.dial_end_ms)
    api = Summary.of(wave.dial_end_api_ms)
    after = wave.after
    shared = len(wave.calls_per_session) > 1
    print(
        f"  wave {wave.number}: {wave.calls} calls, peak in flight {wave.peak_in_flight}"
        f" (in the dial {wave.peak_in_dial}); hand-off p50 {hand.p50:.2f} p99 {hand.p99:.2f}"
        f" max {hand.max:.2f} ms; dial-end net p50 {dial.p50:.2f} p99 {dial.p99:.2f}"
        f" max {dial.max:.2f} ms (API p99 {api.p99:.2f}); worker CPU"
        f" {wave.worker_cpu_ms:.2f} ms/call (fake {wave.fake_cpu_ms:.2f}, sandbox"
        f" {wave.sandbox_cpu_ms:.2f}); busy {wave.busy_pct:.0f}% (others"
        f" {wave.others_pct:.0f}%, steal {wave.steal_pct:.0f}%); major faults worker"
        f" {wave.worker_major_faults}, box {wave.machine_major_faults}; machine stalls"
        f" {len(wave.stalls_ms)} (max {max(wave.stalls_ms, default=0):.0f} ms), p99 without"
        f" the calls they touched: hand-off {Summary.of(wave.handoff_clean_ms).p99:.2f},"
        f" dial-end {Summary.of(wave.dial_end_clean_ms).p99:.2f} ms;"
        f" fake lag p99 {wave.fake_lag_ms.get('p99', 0):.2f} ms;"
        f" RSS {after.rss_kb / 1024 if after else math.nan:.1f} MiB"
        + (f"; calls per AMI session {wave.calls_per_session}" if shared else "")
        + (f"; ACTED TWICE on {wave.acted_twice} calls" if wave.acted_twice else "")
        + (f"; PROBLEMS {dict(wave.problems)}" if wave.problems else ""),
        flush=True,
    )
