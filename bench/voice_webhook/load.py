"""One load phase: wrk against one server, with the CPU it cost and what the sandbox saw."""

from __future__ import annotations

import argparse
import json
import math
import re
import resource
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.voice_webhook.dial_results import (
    AGENT_MARKER_TEMPLATE,
    DialResultPrep,
    call_sid,
    write_signed_dial_results,
)
from bench.voice_webhook.processes import (
    CLOCK_TICKS,
    HOST,
    REPO,
    BenchError,
    MachineCpu,
    Server,
    cpu_seconds,
    die_with_parent,
    stop,
)
from bench.voice_webhook.webhooks import NUMBER_MARKER, VOICE_PATH, write_signed_requests

LUA_SCRIPT = REPO / "bench" / "signed_requests.lua"
POOL_SIZE = 40_000  # numbers recycle after --expire-seconds: enough for 3,800 req/s at 10.5 s
QUIET_OTHERS_PCT = 5.0  # above this, other processes make a phase noisy


@dataclass
class WrkResult:
    """What signed_requests.lua's done() reports."""

    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    socket_errors: int
    non2xx: int
    bad_twiml: int
    sent: int
    available: int
    raw: dict[str, float]

    @property
    def errors(self) -> int:
        return self.socket_errors + self.non2xx + self.bad_twiml

    def describe_errors(self) -> str:
        if not self.errors:
            return "0"
        parts = [
            f"{n} {what}"
            for n, what in (
                (self.socket_errors, "socket"),
                (self.non2xx, "non-2xx"),
                (self.bad_twiml, "bad TwiML"),
            )
            if n
        ]
        return ", ".join(parts)


def run_wrk(
    server: Server,
    requests_file: Path,
    *,
    duration: int,
    connections: int,
    threads: int,
    marker: str = NUMBER_MARKER,
) -> tuple[WrkResult, str]:
    url = f"{server.base_url}{VOICE_PATH}"
    cmd = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{duration}s",
        "--timeout",
        "10s",  # slow answers are measured, not dropped as timeouts
        "--latency",
        "-s",
        str(LUA_SCRIPT),
        url,
        "--",
        str(requests_file),
        str(threads),
        f"{HOST}:{server.port}",
        marker,
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    try:
        out, err = proc.communicate(timeout=duration + 60)
    except BaseException:
        stop(proc, grace=2.0)
        raise
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    match = re.search(r"^WRK_RESULT (\{.*\})$", stdout, re.MULTILINE)
    if proc.returncode != 0 or match is None:
        raise BenchError(f"wrk failed (exit {proc.returncode}):\n{stdout}\n{stderr}")
    raw: dict[str, float] = json.loads(match.group(1))
    socket_errors = int(raw["connect"] + raw["read"] + raw["write"] + raw["timeout"])
    result = WrkResult(
        requests=int(raw["requests"]),
        duration_s=raw["duration_us"] / 1e6,
        rps=raw["rps"],
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        socket_errors=socket_errors,
        non2xx=int(raw["non2xx"]),
        bad_twiml=int(raw["bad_twiml"]),
        sent=int(raw["sent"]),
        available=int(raw["available"]),
        raw=raw,
    )
    return result, stdout


@dataclass
class Phase:
    """One load phase against one server."""

    label: str
    server: str
    wrk: WrkResult
    app_cpu_ms: float  # app workers' CPU per answered request
    sandbox_cpu_ms: float
    store_cpu_ms: float  # the store's own server (redis-server); 0 for SQLite, in the app
    wrk_cpu_ms: float
    busy_pct: float  # the whole machine, both cores = 100 %
    steal_pct: float
    others_pct: float  # CPU used by processes that are not the benchmark's
    transfers: int  # call transfers the sandbox created during the phase
    free_numbers: int

    @property
    def creates_per_request(self) -> float:
        return self.transfers / self.wrk.requests if self.wrk.requests else math.nan


@dataclass
class Bench:
    """The running servers and the settings of one run."""

    args: argparse.Namespace
    tmp: Path
    sandbox: Server
    apps: dict[str, Server]
    store_pids: list[int] = field(default_factory=list)  # a store server of the run's own
    run_tag: str = field(default_factory=lambda: secrets.token_hex(4))
    phase_no: int = 0
    history: list[Phase] = field(default_factory=list)  # every phase, warm-ups included
    dial_results: DialResultPrep | None = None  # set: the dial-result path is loaded
    agent_destination: str = ""
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30.0))

    def others_pct_over(self, seconds: float) -> float:
        """CPU % (100 = every core) used by other processes while we idle ``seconds``."""
        ours = self.our_pids()
        ours0, machine0, driver0 = cpu_seconds(ours), MachineCpu.read(), time.process_time()
        time.sleep(seconds)
        ours1, machine1, driver1 = cpu_seconds(ours), MachineCpu.read(), time.process_time()
        wall = max(1, machine1.total - machine0.total) / CLOCK_TICKS
        busy = (machine1.busy - machine0.busy) / CLOCK_TICKS
        return max(0.0, 100 * (busy - (ours1 - ours0) - (driver1 - driver0)) / wall)

    def wait_for_quiet(self) -> None:
        """Idle ``--settle`` s; while other processes use the CPU, wait (``--quiet-wait`` s at
        most) for them to stop: a shared box is noisy, and alternating only evens it out."""
        deadline = time.monotonic() + self.args.quiet_wait
        others = self.others_pct_over(self.args.settle)
        waited = False
        while others > QUIET_OTHERS_PCT and time.monotonic() < deadline:
            if not waited:
                print(f"  other processes use {others:.0f}% of the CPU: waiting", flush=True)
                waited = True
            others = self.others_pct_over(1.0)
        if others > QUIET_OTHERS_PCT:
            print(f"  still {others:.0f}% used by other processes: measuring anyway", flush=True)

    def our_pids(self) -> list[int]:
        """Every process of the servers (masters and workers, loaded or idle)."""
        pids: list[int] = []
        for server in (self.sandbox, *self.apps.values()):
            pids += [server.proc.pid, *server.workers()]
        return pids + self.store_pids

    def sandbox_reset(self) -> None:
        self.http.post(f"{self.sandbox.base_url}/sandbox/reset").raise_for_status()

    def sandbox_counts(self) -> tuple[int, int]:
        body = self.http.get(f"{self.sandbox.base_url}/sandbox/transfers").json()
        return len(body["transfers"]), int(body["freeNumbers"])

    def run_phase(self, label: str, name: str, duration: int) -> Phase:
        server = self.apps[name]
        self.phase_no += 1
        url = f"{server.base_url}{VOICE_PATH}"
        count = math.ceil(duration * self.args.max_rate)
        requests_file = self.tmp / f"requests-{self.phase_no}.txt"
        tag = f"{self.run_tag}{self.phase_no:02x}"
        self.sandbox_reset()
        marker = NUMBER_MARKER
        if self.dial_results is None:
            write_signed_requests(requests_file, url, count, tag)
        else:
            marker = AGENT_MARKER_TEMPLATE.format(self.agent_destination)
            templates = self.dial_results.templates(self.apps["adapter"].base_url, tag)
            sids = [call_sid(tag, index) for index in range(count)]
            if name == "adapter":
                self.dial_results.copy_records(templates, sids)
            write_signed_dial_results(requests_file, server.base_url, sids, templates)
        self.wait_for_quiet()
        app_pids, sandbox_pids = server.workers(), self.sandbox.workers()
        ours = self.our_pids()
        app0, sandbox0, ours0 = cpu_seconds(app_pids), cpu_seconds(sandbox_pids), cpu_seconds(ours)
        store0 = cpu_seconds(self.store_pids)
        machine0 = MachineCpu.read()
        children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        driver0 = time.process_time()
        try:
            result, _ = run_wrk(
                server,
                requests_file,
                duration=duration,
                connections=self.args.connections,
                threads=self.args.wrk_threads,
                marker=marker,
            )
        finally:
            requests_file.unlink(missing_ok=True)
        driver1 = time.process_time()
        children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        machine1 = MachineCpu.read()
        app1, sandbox1, ours1 = cpu_seconds(app_pids), cpu_seconds(sandbox_pids), cpu_seconds(ours)
        store1 = cpu_seconds(self.store_pids)
        transfers, free = self.sandbox_counts()
        ticks = max(1, machine1.total - machine0.total)
        per_request = 1000 / max(1, result.requests)
        wrk_cpu = (children1.ru_utime + children1.ru_stime) - (
            children0.ru_utime + children0.ru_stime
        )
        phase = Phase(
            label=label,
            server=name,
            wrk=result,
            app_cpu_ms=(app1 - app0) * per_request,
            sandbox_cpu_ms=(sandbox1 - sandbox0) * per_request,
            store_cpu_ms=(store1 - store0) * per_request,
            wrk_cpu_ms=wrk_cpu * per_request,
            busy_pct=100 * (machine1.busy - machine0.busy) / ticks,
            steal_pct=100 * (machine1.steal - machine0.steal) / ticks,
            others_pct=max(
                0.0,
                100
                * (
                    (machine1.busy - machine0.busy) / CLOCK_TICKS
                    - (ours1 - ours0 + wrk_cpu + driver1 - driver0)
                )
                / (ticks / CLOCK_TICKS),
            ),
            transfers=transfers,
            free_numbers=free,
        )
        print(
            f"  {label:>8} {name:<8} {result.rps:8.1f} req/s  p50 {result.p50_ms:6.1f} ms"
            f"  p99 {result.p99_ms:6.1f} ms  errors {result.describe_errors()}"
            f"  app {phase.app_cpu_ms:.2f} ms CPU/req  sandbox {phase.sandbox_cpu_ms:.2f}"
            f"  store {phase.store_cpu_ms:.2f}"
            f"  busy {phase.busy_pct:.0f}% (others {phase.others_pct:.0f}%,"
            f" steal {phase.steal_pct:.0f}%)"
            f"  creates/req {phase.creates_per_request:.3f}  free numbers {free}",
            flush=True,
        )
        if result.sent > result.available:  # the Lua script exits first; belt and braces
            raise BenchError(f"{label} {name}: the signed requests ran out; raise --max-rate")
        if free < POOL_SIZE // 20:
            print(
                f"  warning: only {free} of {POOL_SIZE} sandbox numbers were free at the end:"
                " near exhaustion (numbers recycle after --expire-seconds; 503s would show"
                " as errors)",
                flush=True,
            )
        self.history.append(phase)
        return phase
