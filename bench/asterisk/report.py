"""The end-of-run checks, the verdict and the Markdown report."""

from __future__ import annotations

import argparse
import math
import platform
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from adapter.store import StoreOptions, open_store
from bench.asterisk.config import (
    AMI_USERNAME,
    FLAT_GROWTH_KB,
    GA_API_MAX_RPS,
    OTHERS_WARN_PCT,
    STALL_DRAIN,
    STALL_MS,
    STORE_KEY_PREFIX,
    TARGET_P99_MS,
)
from bench.asterisk.machine import ProcStatus
from bench.asterisk.waves import Summary, Wave
from bench.voice_webhook.report import machine_description, version_of


@dataclass
class StoreCheck:
    active_ids: int
    records: int
    outcomes: dict[str, int]
    routes: dict[str, int]


def check_store(url: str) -> StoreCheck:
    """After the workers stopped: no call still active, and how every call ended."""
    store = open_store(url, StoreOptions(key_prefix=STORE_KEY_PREFIX))
    try:
        active = store.active_ids()
        records = store.recent(limit=1_000_000)
    finally:
        store.close()
    outcomes = Counter(str(r.data.get("outcome") or "-") for r in records)
    routes = Counter(str((r.data.get("route") or {}).get("kind") or "-") for r in records)
    return StoreCheck(len(active), len(records), dict(outcomes), dict(routes))


# --- verdict and report -------------------------------------------------------------------


@dataclass
class Verdict:
    handoff_p99: float
    dial_end_p99: float
    peak_ok: bool
    growth_kb: int
    worker_exit: int | None
    invalid: list[str]
    acted_twice: int = 0

    @property
    def handoff_ok(self) -> bool:
        return self.handoff_p99 < TARGET_P99_MS

    @property
    def dial_end_ok(self) -> bool:
        return self.dial_end_p99 < TARGET_P99_MS

    @property
    def memory_ok(self) -> bool:
        return self.growth_kb < FLAT_GROWTH_KB

    @property
    def latency_ok(self) -> bool:
        return self.handoff_ok and self.dial_end_ok

    @property
    def once_ok(self) -> bool:
        return self.acted_twice == 0

    @property
    def passed(self) -> bool:
        ok = self.latency_ok and self.peak_ok and self.memory_ok and self.once_ok
        return ok and not self.invalid


def judge(
    args: argparse.Namespace,
    waves: Sequence[Wave],
    store: StoreCheck,
    worker_exit: int | None,
    calls_run: int,
) -> Verdict:
    """``worker_exit``: the first non-zero exit status of the workers on SIGTERM, or 0."""
    """``calls_run``: every call of the run, a profiled wave's included (they are stored)."""
    invalid = [f"wave {w.number}: {dict(w.problems)}" for w in waves if w.problems]
    if store.active_ids:
        invalid.append(f"{store.active_ids} calls still active in the store")
    if store.routes.get("agent", 0) != calls_run or store.records != calls_run:
        invalid.append(f"store routes {store.routes}, expected {calls_run} agent")
    if worker_exit != 0:
        invalid.append(f"a worker exited {worker_exit} on SIGTERM")
    rss = [w.after.rss_kb for w in waves if w.after]
    return Verdict(
        handoff_p99=max(Summary.of(w.handoff_ms).p99 for w in waves),
        dial_end_p99=max(Summary.of(w.dial_end_ms).p99 for w in waves),
        peak_ok=all(w.peak_in_flight >= args.calls for w in waves),
        growth_kb=rss[-1] - rss[0] if rss else 0,
        worker_exit=worker_exit,
        invalid=invalid,
        acted_twice=sum(w.acted_twice for w in waves),
    )


def slope_bytes_per_call(waves: Sequence[Wave], calls: int) -> float:
    """Least-squares RSS growth per call over the waves (wave 1 included)."""
    points = [(i * calls, w.after.rss_kb * 1024) for i, w in enumerate(waves) if w.after]
    if len(points) < 2:
        return math.nan
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else math.nan


def _ms(summary: Summary) -> str:
    return f"{summary.p50:.2f} / {summary.p90:.2f} / {summary.p99:.2f} / {summary.max:.2f}"


def report(
    args: argparse.Namespace,
    waves: Sequence[Wave],
    memory: tuple[ProcStatus, ProcStatus],
    store: StoreCheck,
    verdict: Verdict,
    sandbox_args: Sequence[str],
    profile: str | None,
) -> str:
    """The Markdown report."""

    def mark(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    fresh, before = memory
    shared = args.workers > 1
    who = f"{args.workers} workers" if shared else "worker"
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rate = args.calls / args.window
    rows = [
        "| wave | peak in flight (in the dial) | hand-off ms p50 / p90 / p99 / max "
        "| dial-end ms beyond the API: p50 / p90 / p99 / max | API ms p50 / p99 "
        f"| CPU ms/call: {'workers' if shared else 'worker'} / fake / sandbox"
        f"{' / redis' if args.store == 'redis' else ''} | box busy % (others) "
        "| machine stalls: n, max ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for w in waves:
        api = Summary.of(w.dial_end_api_ms)
        rows.append(
            f"| {w.number} | {w.peak_in_flight} ({w.peak_in_dial}) "
            f"| {_ms(Summary.of(w.handoff_ms))} | {_ms(Summary.of(w.dial_end_ms))} "
            f"| {api.p50:.2f} / {api.p99:.2f} "
            f"| {w.worker_cpu_ms:.2f} / {w.fake_cpu_ms:.2f} / {w.sandbox_cpu_ms:.2f}"
            f"{f' / {w.redis_cpu_ms:.2f}' if args.store == 'redis' else ''} "
            f"| {w.busy_pct:.0f} ({w.others_pct:.0f}) "
            f"| {len(w.stalls_ms)}, {max(w.stalls_ms, default=0):.0f} |"
        )
    pooled_api = Summary.of([v for w in waves for v in w.dial_end_api_ms])
    rows.append(
        f"| **all** | {min(w.peak_in_flight for w in waves)} (lowest) "
        f"| {_ms(Summary.of([v for w in waves for v in w.handoff_ms]))} "
        f"| {_ms(Summary.of([v for w in waves for v in w.dial_end_ms]))} "
        f"| {pooled_api.p50:.2f} / {pooled_api.p99:.2f} "
        f"| {sum(w.worker_cpu_ms for w in waves) / len(waves):.2f} (worker, mean) "
        f"| | {sum(len(w.stalls_ms) for w in waves)}, "
        f"{max((m for w in waves for m in w.stalls_ms), default=0):.0f} |"
    )
    diagnostic = [
        "| wave | hand-off p99 ms (calls left) | dial-end p99 ms (calls left) "
        "| dial-end raw p99 ms (API included) | fake loop lag ms p99 / max "
        "| major faults: worker / box |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for w in waves:
        diagnostic.append(
            f"| {w.number} | {Summary.of(w.handoff_clean_ms).p99:.2f} "
            f"({len(w.handoff_clean_ms)}) | {Summary.of(w.dial_end_clean_ms).p99:.2f} "
            f"({len(w.dial_end_clean_ms)}) | {Summary.of(w.dial_end_raw_ms).p99:.2f} "
            f"| {w.fake_lag_ms.get('p99', 0):.2f} / {w.fake_lag_ms.get('max', 0):.2f} "
            f"| {w.worker_major_faults} / {w.machine_major_faults} |"
        )
    to_dial = Summary.of([v for w in waves for v in w.to_dial_net_ms])
    rss_rows = [
        f"| {who}{' (sum)' if shared else ''} | VmRSS MiB | threads | open fds |",
        "| --- | ---: | ---: | ---: |",
        f"| ready, idle | {fresh.rss_kb / 1024:.1f} | {fresh.threads} | {fresh.fds} |",
        f"| before wave 1{' (after the warm-up)' if args.warmup else ''} "
        f"| {before.rss_kb / 1024:.1f} | {before.threads} | {before.fds} |",
    ]
    for w in waves:
        if w.after:
            rss_rows.append(
                f"| after wave {w.number} | {w.after.rss_kb / 1024:.1f} | {w.after.threads} "
                f"| {w.after.fds} |"
            )
    first = waves[0].after.rss_kb if waves[0].after else 0
    growth_pct = 100 * verdict.growth_kb / first if first else math.nan
    slope = slope_bytes_per_call(waves, args.calls)
    warmup = (
        f"an unmeasured warm-up of {args.warmup} calls, then " if args.warmup else "no warm-up, "
    )
    lines = [
        f"## Asterisk {who}: {args.calls:,} calls in flight"
        + (f", a {args.store.capitalize()} store shared" if shared else ""),
        "",
        f"Run {now} on {machine_description()}; Linux {platform.release()}, "
        f"Python {platform.python_version()}, panoramisk {version_of('panoramisk')}, "
        f"httpx {version_of('httpx')}, gunicorn {version_of('gunicorn')}. Command: "
        f"`python3 bench/asterisk_worker.py --calls {args.calls} --waves {args.waves} "
        f"--window {args.window:g}"
        + (f" --workers {args.workers}" if shared else "")
        + (f" --store {args.store}" if args.store != "sqlite" else "")
        + f" --load {args.load}"
        + (" --unfiltered" if args.unfiltered else "")
        + "`.",
        "",
        f"- {'Workers' if shared else 'Worker'}: "
        + (f"{args.workers} processes of " if shared else "")
        + "`python -m adapter asterisk`, configured by environment only: the fake's "
        f"AMI on 127.0.0.1 as `{AMI_USERNAME}` (least privilege), "
        f"`GA_API_MAX_RPS={GA_API_MAX_RPS}` (the sandbox has no spike limit, and a wait in "
        "the client's limiter would count as the worker's latency; the default 100/s would "
        "hold a wave's creates back), "
        + (
            "a private redis-server as the store (`STORE_URL=redis://...`, no persistence) "
            "and the per-call leases (default `LEASE_TTL`), every worker receiving every "
            "event, "
            if args.store == "redis"
            else "SQLite store in a fresh temporary file, "
        )
        + "`LOG_LEVEL=WARNING`.",
        f"- Sandbox: `gunicorn {' '.join(sandbox_args)}`, pool 9900 numbers, expiry "
        f"{args.expire_seconds:g} s, reset before every wave.",
        "- Fake Asterisk (`tests.fake_ami`, its own process and event loop): "
        f"{warmup}{len(waves)} waves of {args.calls} callers handed off evenly over "
        f"{args.window:g} s ({rate:.0f}/s); each dial is answered, GenerativeAgent connected "
        f"on the sandbox and talking until {args.hold:g} s after that caller's hand-off (so all "
        f"{args.calls} are in flight at once), then completed (AGENT) and "
        f"`DialOutcome('ANSWER', talk={args.talk:g})`; routed callers hang up "
        f"{args.hangup_after:g} s later.",
        "- Hand-off latency: the first action of any worker on the caller's channel minus the "
        "GenerativeAgentTransfer UserEvent. Dial-end latency: its first Setvar/Redirect after "
        "the GenerativeAgentReturned UserEvent minus that event, minus the API's own latency: "
        "the sandbox's time for that call's GET, from gunicorn seeing the request's socket "
        "readable to the last byte written. All on CLOCK_MONOTONIC; the fake stamps an "
        "action when it handles it, so its own delays can only add to the worker's figures.",
        "",
        *rows,
        "",
        f"Also measured: hand-off to the dial Redirect, beyond the create's API time, p50 "
        f"{to_dial.p50:.2f} ms, p99 {to_dial.p99:.2f} ms (Status, the store's writes, the two "
        "Setvars and the Redirect in one write).",
        "",
        "Diagnostic, not the verdict: *machine stalls* are moments when an idle thread of "
        f"the benchmark's own process woke up {STALL_MS:g} ms or more late; on this VM all "
        "processes stall together. Without the calls whose measurement overlapped one (or "
        f"the {STALL_DRAIN * 1000:.0f} ms after it):",
        "",
        *diagnostic,
        "",
        *rss_rows,
        "",
        f"RSS growth wave 1 -> wave {waves[-1].number}: {verdict.growth_kb / 1024:+.2f} MiB "
        f"({growth_pct:+.1f} %); least-squares slope {slope:+.0f} bytes per call. The {who} "
        f"stopped on SIGTERM with exit status {verdict.worker_exit}; the store then held "
        f"{store.records} call records, {store.active_ids} active (`active_ids()`), outcomes "
        f"{store.outcomes}.",
        "",
        "| target | measured | verdict |",
        "| --- | ---: | --- |",
        f"| {args.calls} calls in flight at once | lowest peak "
        f"{min(w.peak_in_flight for w in waves)} | {mark(verdict.peak_ok)} |",
        f"| hand-off p99 < {TARGET_P99_MS:g} ms, every wave | worst {verdict.handoff_p99:.2f} ms "
        f"| {mark(verdict.handoff_ok)} |",
        f"| dial-end p99 < {TARGET_P99_MS:g} ms beyond the API, every wave "
        f"| worst {verdict.dial_end_p99:.2f} ms | {mark(verdict.dial_end_ok)} |",
        f"| memory flat: RSS wave 1 -> last < {FLAT_GROWTH_KB // 1024} MiB "
        f"| {verdict.growth_kb / 1024:+.2f} MiB | {'FLAT' if verdict.memory_ok else 'GROWING'} |",
        f"| no decision acted on twice (a Setvar or Redirect repeated) "
        f"| {verdict.acted_twice} calls | {mark(verdict.once_ok)} |",
    ]
    if shared:
        split = "; ".join(
            f"wave {w.number}: " + " / ".join(str(n) for n in w.calls_per_session.values())
            for w in waves
        )
        lines += ["", f"Calls acted on by each worker (its AMI session): {split}."]
    busy = max(w.others_pct for w in waves)
    if busy >= OTHERS_WARN_PCT:
        lines += [
            "",
            f"**Other processes used up to {busy:.0f} % of the machine during a wave**: "
            "the latencies above are not the workers' alone.",
        ]
    if profile:
        lines += ["", f"### Where the {'first ' if shared else ''}worker's time goes", "", profile]
    if verdict.invalid:
        lines += ["", "**INVALID RUN**: " + "; ".join(verdict.invalid) + "."]
    lines += ["", f"**Overall: {'PASS' if verdict.passed else 'FAIL'}**", ""]
    return "\n".join(lines)
