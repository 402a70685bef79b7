"""The Markdown report: the phases' table, the ratios and the verdict."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench.voice_webhook.load import POOL_SIZE, QUIET_OTHERS_PCT, Phase
from bench.voice_webhook.stores import StoreReport

# Issue 11: a throughput cost of at most 1.1x the floor (req/s at least 1/1.1 of its),
# a p99 at most 1.25x its.
TARGET_COST = 1.1
TARGET_RPS_RATIO = 1 / TARGET_COST
TARGET_P99_RATIO = 1.25


def machine_description() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs (nproc), {model}"


def version_of(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def wrk_version() -> str:
    proc = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    first = (proc.stdout or proc.stderr).splitlines()
    return first[0].split("[")[0].strip() if first else "wrk"


def table(phases: Sequence[Phase]) -> list[str]:
    rows = [
        "| round | server | req/s | p50 ms | p90 ms | p99 ms | errors "
        "| GA creates/req | app CPU ms/req | store CPU ms/req | sandbox CPU ms/req "
        "| CPU busy % (others) |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in phases:
        w = p.wrk
        rows.append(
            f"| {p.label} | {p.server} | {w.rps:.0f} | {w.p50_ms:.1f} | {w.p90_ms:.1f} "
            f"| {w.p99_ms:.1f} | {w.describe_errors()} | {p.creates_per_request:.3f} "
            f"| {p.app_cpu_ms:.2f} | {p.store_cpu_ms:.2f} | {p.sandbox_cpu_ms:.2f} "
            f"| {p.busy_pct:.0f} ({p.others_pct:.0f}) |"
        )
    for name in ("baseline", "adapter"):
        mine = [p for p in phases if p.server == name]
        errors = sum(p.wrk.errors for p in mine)
        rows.append(
            f"| **median** | **{name}** | **{median(p.wrk.rps for p in mine):.0f}** "
            f"| {median(p.wrk.p50_ms for p in mine):.1f} "
            f"| {median(p.wrk.p90_ms for p in mine):.1f} "
            f"| **{median(p.wrk.p99_ms for p in mine):.1f}** | {errors} (total) "
            f"| {median(p.creates_per_request for p in mine):.3f} "
            f"| {median(p.app_cpu_ms for p in mine):.2f} "
            f"| {median(p.store_cpu_ms for p in mine):.2f} "
            f"| {median(p.sandbox_cpu_ms for p in mine):.2f} "
            f"| {median(p.busy_pct for p in mine):.0f} ({median(p.others_pct for p in mine):.0f}) |"
        )
    return rows


def per_round(phases: Sequence[Phase], metric: Callable[[Phase], float]) -> str:
    """adapter / baseline of ``metric`` in each round, e.g. "0.81, 0.79, 0.80"."""
    by_round: dict[str, dict[str, float]] = {}
    for p in phases:
        by_round.setdefault(p.label, {})[p.server] = metric(p)
    return ", ".join(
        f"{pair['adapter'] / pair['baseline']:.2f}"
        for pair in by_round.values()
        if "adapter" in pair and "baseline" in pair
    )


def median(values: Iterator[float] | Sequence[float]) -> float:
    return statistics.median(list(values))


@dataclass
class Verdict:
    rps_ratio: float
    p99_ratio: float
    invalid: list[str]

    @property
    def rps_ok(self) -> bool:
        return self.rps_ratio >= TARGET_RPS_RATIO

    @property
    def p99_ok(self) -> bool:
        return self.p99_ratio <= TARGET_P99_RATIO

    @property
    def passed(self) -> bool:
        return self.rps_ok and self.p99_ok and not self.invalid


def judge(phases: Sequence[Phase]) -> Verdict:
    base = [p for p in phases if p.server == "baseline"]
    adapter = [p for p in phases if p.server == "adapter"]
    invalid = [f"{p.label} {p.server}: {p.wrk.describe_errors()}" for p in phases if p.wrk.errors]
    return Verdict(
        rps_ratio=median(p.wrk.rps for p in adapter) / median(p.wrk.rps for p in base),
        p99_ratio=median(p.wrk.p99_ms for p in adapter) / median(p.wrk.p99_ms for p in base),
        invalid=invalid,
    )


def report(
    args: argparse.Namespace,
    phases: Sequence[Phase],
    verdict: Verdict,
    store: StoreReport,
    app_args: Sequence[str],
    sandbox_args: Sequence[str],
) -> str:
    def mark(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    adapter_phases = [p for p in phases if p.server == "adapter"]
    base_phases = [p for p in phases if p.server == "baseline"]
    cpu_extra = median(p.app_cpu_ms for p in adapter_phases) - median(
        p.app_cpu_ms for p in base_phases
    )
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    dial_result = getattr(args, "path", "voice") == "dial-result"
    what = (
        "Dial-result webhook (GenerativeAgent hung up, transfer COMPLETED, AGENT)"
        if dial_result
        else "Voice webhook"
    )
    floor = (
        "`bench/baseline_app.py` (signature check, one GET of the transfer over a pooled httpx"
        " client, the <Dial> of the agent; no store)"
        if dial_result
        else "`bench/baseline_app.py` (signature check, one create over a pooled httpx client, "
        "the Dial; no store)"
    )
    lines = [
        f"## {what}: adapter ({args.store} store) vs a minimal handler",
        "",
        f"Run {now} on {machine_description()}; Linux {platform.release()}, "
        f"Python {platform.python_version()}, gunicorn {version_of('gunicorn')}, "
        f"Flask {version_of('flask')}, httpx {version_of('httpx')}, {wrk_version()}.",
        "",
        f"- Both apps: `gunicorn {' '.join(app_args)}` on 127.0.0.1, both up for the whole "
        f"run, loaded one at a time. Adapter: `adapter.web:create_app()`, {store.kind}, "
        f"`GA_API_MAX_RPS=10000`, `PROXY_HOPS=0`. Baseline: {floor}.",
        *(
            [
                "- Dial results: before each phase (not measured) 64 calls are handed off "
                "through the adapter and completed (AGENT) on the sandbox; the adapter's store "
                "gets one dialing record per webhook of the phase, each a copy of a template's "
                "under a fresh CallSid (`bench/voice_webhook/dial_results.py`)."
            ]
            if dial_result
            else []
        ),
        f"- Sandbox: `gunicorn {' '.join(sandbox_args)}`, pool {POOL_SIZE} numbers, expiry "
        f"{args.expire_seconds:g} s, reset before every phase.",
        f"- Load: `wrk -t{args.wrk_threads} -c{args.connections} -d{args.duration}s "
        f"--timeout 10s --latency`, Twilio-signed {'dial-result' if dial_result else 'voice'}"
        " webhooks, a fresh CallSid each; "
        f"{args.warmup} s warm-up of each, then {args.rounds} rounds, baseline then adapter "
        "in odd rounds and the other way round in even ones (so that a machine slowing "
        "down or speeding up over the run weighs on both alike). Errors = socket errors + "
        "non-2xx + 2xx without the `<Number>` to dial "
        "(the sandbox's, or the agent's after a dial result). CPU ms/req: user + system "
        "CPU of the loaded app's workers (of the store's "
        "server, of the sandbox) per answered webhook; GA creates/req: transfers the sandbox "
        "created per answered webhook; CPU busy: the whole machine (100 = every core), "
        "others: the part used by processes the benchmark did not start.",
        "",
        *table(phases),
        "",
        "| target | adapter / baseline (medians) | per round | verdict |",
        "| --- | ---: | --- | --- |",
        f"| req/s ≥ 1/{TARGET_COST:g} = {TARGET_RPS_RATIO:.3f} | {verdict.rps_ratio:.3f} "
        f"| {per_round(phases, lambda p: p.wrk.rps)} | {mark(verdict.rps_ok)} |",
        f"| p99 ≤ {TARGET_P99_RATIO:g} | {verdict.p99_ratio:.3f} "
        f"| {per_round(phases, lambda p: p.wrk.p99_ms)} | {mark(verdict.p99_ok)} |",
        "",
        f"The adapter costs {cpu_extra:+.2f} ms of app CPU per webhook over the baseline "
        "(medians).",
        store.summary(),
        f"Sandbox numbers free at the end of a phase: {min(p.free_numbers for p in phases)} "
        f"of {POOL_SIZE} at the lowest.",
    ]
    noisy = [f"{p.label} {p.server}" for p in phases if p.others_pct > QUIET_OTHERS_PCT]
    if noisy:
        lines += [
            "",
            f"Noisy: other processes used more than {QUIET_OTHERS_PCT:g} % of the CPU during "
            + ", ".join(noisy)
            + "; rerun on a quieter machine for a clean comparison.",
        ]
    if verdict.invalid:
        lines += ["", "**INVALID RUN**: " + "; ".join(verdict.invalid) + "."]
    lines += [
        "",
        f"**Overall: {'PASS' if verdict.passed else 'FAIL'}**",
        "",
    ]
    return "\n".join(lines)
