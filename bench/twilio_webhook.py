#!/usr/bin/env python3
"""Voice-webhook benchmark: the adapter against the least any correct handler must do.

    python3 bench/twilio_webhook.py [--duration 15] [--rounds 3] [--connections 32]

Starts, on 127.0.0.1 only, the GenerativeAgent sandbox (gunicorn, one gthread worker:
its state is in memory) and two apps under IDENTICAL gunicorn settings: the adapter
(``adapter.web:create_app()``, SQLite store in a fresh temporary file) and the minimal
handler of ``bench/baseline_app.py``. Both servers run for the whole run; wrk loads one
at a time with Twilio-signed voice webhooks, each with a fresh CallSid, pre-signed
into a file that ``bench/signed_requests.lua`` replays. After a warm-up of each, it
alternates baseline, adapter, baseline, adapter, ... (the sandbox reset before every
phase), prints a Markdown table with the ratios adapter/baseline and the verdict
against the targets (req/s >= 0.80, p99 <= 1.5), and writes it to
``bench/results/twilio_webhook.md``. It also reads the adapter's SQLite durability
settings back from its store file and, with strace, counts its fsyncs per webhook.

Needs wrk (``apt-get install wrk``); strace is optional. Every process it starts is in
its own process group and is stopped on exit, failure or Ctrl-C. Exit status: 0 the
targets are met, 1 they are not, 2 the run is invalid (errors, non-2xx, bad TwiML,
exhausted requests) or could not be set up.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import math
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import IO, Any
from urllib.parse import urlencode

import httpx
from twilio.request_validator import RequestValidator

REPO = Path(__file__).resolve().parent.parent
LUA_SCRIPT = REPO / "bench" / "signed_requests.lua"
RESULTS_FILE = REPO / "bench" / "results" / "twilio_webhook.md"

HOST = "127.0.0.1"
AUTH_TOKEN = "bench-twilio-auth-token-0123456789abcdef"
GA_API_ID = "bench-api-id"
GA_API_SECRET = "bench-api-secret"
AGENT_DESTINATION = "+15550100"
NUMBER_MARKER = "<Number>+1999555"  # every sandbox transfer number starts so
VOICE_PATH = "/twilio/voice"
POOL_SIZE = 9900  # the sandbox's largest pool (+19995550100 .. +19995559999)
QUIET_OTHERS_PCT = 5.0  # above this, other processes make a phase noisy
TARGET_RPS_RATIO = 0.80
TARGET_P99_RATIO = 1.5
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Environment variables passed through to the servers; everything else is set here.
PASS_THROUGH_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")


class BenchError(Exception):
    """The run could not be set up or carried out."""


# --- processes ---------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the benchmark itself dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(
    cmd: Sequence[str], *, env: dict[str, str] | None, log: IO[bytes]
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a new process group (so that stopping it stops its children too)."""
    return subprocess.Popen(
        list(cmd),
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )


def stop(proc: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL it if it is still there after ``grace``."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)
    # Stragglers of the group (a worker whose master is gone) go too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class Processes:
    """Every long-running process of the run; ``close()`` stops them all."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def add(self, proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        self._procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self._procs):
            stop(proc)
        self._procs.clear()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def descendants(pid: int) -> list[int]:
    """``pid``'s live descendants (gunicorn workers of a master), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds used so far by ``pids`` (vanished ones count 0)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


@dataclass(frozen=True)
class MachineCpu:
    """Cumulative /proc/stat counters, in ticks."""

    busy: int
    steal: int
    total: int

    @classmethod
    def read(cls) -> MachineCpu:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        steal = values[7] if len(values) > 7 else 0
        total = sum(values[:8])
        return cls(busy=total - idle - steal, steal=steal, total=total)


@dataclass
class Server:
    """One gunicorn server of the run."""

    name: str
    app: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def workers(self) -> list[int]:
        return descendants(self.proc.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def start_gunicorn(
    procs: Processes,
    name: str,
    app: str,
    gunicorn_args: Sequence[str],
    env: dict[str, str],
    tmp: Path,
) -> Server:
    port = free_port()
    log_path = tmp / f"{name}.log"
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"{HOST}:{port}",
        *gunicorn_args,
        "--chdir",
        str(REPO),
        "--log-level",
        "warning",
        app,
    ]
    with log_path.open("wb") as log:
        proc = procs.add(spawn(cmd, env=env, log=log))
    return Server(name, app, port, proc, log_path)


def wait_ready(server: Server, timeout: float = 30.0) -> None:
    """Until a worker answers HTTP (any status): the master alone only queues connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise BenchError(f"{server.name} exited at start-up:\n{server.log_tail()}")
        try:
            httpx.get(f"{server.base_url}/healthz", timeout=2.0)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise BenchError(f"{server.name} did not answer within {timeout:g} s:\n{server.log_tail()}")


# --- signed webhooks ---------------------------------------------------------------------


def voice_params(call_sid: str, index: int) -> dict[str, str]:
    """A voice webhook as Twilio posts it for an inbound call (its parameter names)."""
    caller = f"+1415{index % 10_000_000:07d}"
    return {
        "AccountSid": "AC" + "0123456789abcdef" * 2,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": "ringing",
        "Called": "+18005550100",
        "CalledCity": "",
        "CalledCountry": "US",
        "CalledState": "",
        "CalledZip": "",
        "Caller": caller,
        "CallerCity": "SAN FRANCISCO",
        "CallerCountry": "US",
        "CallerState": "CA",
        "CallerZip": "94103",
        "Direction": "inbound",
        "From": caller,
        "FromCity": "SAN FRANCISCO",
        "FromCountry": "US",
        "FromState": "CA",
        "FromZip": "94103",
        "To": "+18005550100",
        "ToCity": "",
        "ToCountry": "US",
        "ToState": "",
        "ToZip": "",
    }


def write_signed_requests(path: Path, url: str, count: int, tag: str) -> None:
    """``count`` webhooks for ``url``, each with a fresh CallSid: "signature<TAB>form".

    CallSids are CA + 32 hex digits: ``tag`` (unique to the run and phase), then ``i``.
    """
    validator = RequestValidator(AUTH_TOKEN)
    width = 32 - len(tag)
    if count > 16**width:
        raise BenchError(f"{count} requests do not fit in {width} hex digits")
    with path.open("w", encoding="ascii") as out:
        for i in range(count):
            params = voice_params(f"CA{tag}{i:0{width}x}", i)
            signature = validator.compute_signature(url, params)
            out.write(f"{signature}\t{urlencode(params)}\n")


# --- load --------------------------------------------------------------------------------


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
    server: Server, requests_file: Path, *, duration: int, connections: int, threads: int
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
        NUMBER_MARKER,
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_die_with_parent,
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
    run_tag: str = field(default_factory=lambda: secrets.token_hex(4))
    phase_no: int = 0
    history: list[Phase] = field(default_factory=list)  # every phase, warm-ups included
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
        return pids

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
        write_signed_requests(requests_file, url, count, f"{self.run_tag}{self.phase_no:02x}")
        self.sandbox_reset()
        self.wait_for_quiet()
        app_pids, sandbox_pids = server.workers(), self.sandbox.workers()
        ours = self.our_pids()
        app0, sandbox0, ours0 = cpu_seconds(app_pids), cpu_seconds(sandbox_pids), cpu_seconds(ours)
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
            )
        finally:
            requests_file.unlink(missing_ok=True)
        driver1 = time.process_time()
        children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        machine1 = MachineCpu.read()
        app1, sandbox1, ours1 = cpu_seconds(app_pids), cpu_seconds(sandbox_pids), cpu_seconds(ours)
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


# --- the adapter's store -----------------------------------------------------------------


@dataclass
class StoreReport:
    header_wal: bool
    journal_mode: str
    synchronous: str
    wal_autocheckpoint: int
    records: int
    dialed_records: int
    adapter_transfers: int = 0  # transfers the sandbox created while the adapter was loaded
    fsync_note: str = "not measured"


SYNCHRONOUS_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def inspect_store(path: Path) -> StoreReport:
    """Read the durability settings back from the adapter's store file and connection."""
    from adapter.store.sqlite import SQLiteCallStore  # the adapter's own code path

    with path.open("rb") as db:
        header = db.read(100)
    # Bytes 18 and 19 of the header: file format write/read version, 2 = WAL.
    header_wal = header[:16] == b"SQLite format 3\x00" and header[18] == 2 and header[19] == 2
    fresh = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (journal_mode,) = fresh.execute("PRAGMA journal_mode").fetchone()
        records, dialed = fresh.execute(
            "SELECT count(*), sum(json_extract(data, '$.steps.start.step') = 'dial') FROM calls"
        ).fetchone()
    finally:
        fresh.close()
    # synchronous is a property of each connection, not of the file: ask a connection
    # opened exactly as the adapter's workers open theirs.
    store = SQLiteCallStore(str(path))
    try:
        with store._use() as conn:
            (sync_level,) = conn.execute("PRAGMA synchronous").fetchone()
            (autocheckpoint,) = conn.execute("PRAGMA wal_autocheckpoint").fetchone()
    finally:
        store.close()
    return StoreReport(
        header_wal=header_wal,
        journal_mode=str(journal_mode),
        synchronous=f"{SYNCHRONOUS_NAMES.get(int(sync_level), '?')} ({sync_level})",
        wal_autocheckpoint=int(autocheckpoint),
        records=int(records),
        dialed_records=int(dialed or 0),
    )


def fsync_probe(bench: Bench, seconds: int) -> str:
    """Count fsync/fdatasync of the adapter's workers under load (strace; not timed)."""
    strace = shutil.which("strace")
    if strace is None:
        return "not measured (no strace)"
    pids = bench.apps["adapter"].workers()
    out = bench.tmp / "strace.txt"
    cmd = [strace, "-f", "-c", "-e", "trace=fsync,fdatasync,sync_file_range", "-o", str(out)]
    for pid in pids:
        cmd += ["-p", str(pid)]
    with (bench.tmp / "strace.log").open("wb") as log:
        tracer = spawn(cmd, env=None, log=log)
    try:
        time.sleep(1.0)  # attached
        if tracer.poll() is not None:
            return f"not measured (strace exited {tracer.returncode})"
        phase = bench.run_phase("probe", "adapter", seconds)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(tracer.pid, signal.SIGINT)  # strace writes its summary on SIGINT
        with contextlib.suppress(subprocess.TimeoutExpired):
            tracer.wait(10)
        stop(tracer, grace=2.0)
    calls = 0
    if out.exists():
        for line in out.read_text().splitlines():
            parts = line.split()
            if parts and parts[-1] in ("fsync", "fdatasync", "sync_file_range"):
                calls += int(parts[3]) if len(parts) >= 5 else 0
    answered = phase.wrk.requests
    return (
        f"{calls} fsync/fdatasync calls for {answered} webhooks answered"
        f" ({calls / max(1, answered):.3f} per webhook; {seconds} s under strace, not timed)"
    )


# --- report ------------------------------------------------------------------------------


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
        "| GA creates/req | app CPU ms/req | sandbox CPU ms/req | CPU busy % (others) |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for p in phases:
        w = p.wrk
        rows.append(
            f"| {p.label} | {p.server} | {w.rps:.0f} | {w.p50_ms:.1f} | {w.p90_ms:.1f} "
            f"| {w.p99_ms:.1f} | {w.describe_errors()} | {p.creates_per_request:.3f} "
            f"| {p.app_cpu_ms:.2f} | {p.sandbox_cpu_ms:.2f} "
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
    lines = [
        "## Voice webhook: adapter vs a minimal handler",
        "",
        f"Run {now} on {machine_description()}; Linux {platform.release()}, "
        f"Python {platform.python_version()}, gunicorn {version_of('gunicorn')}, "
        f"Flask {version_of('flask')}, httpx {version_of('httpx')}, {wrk_version()}.",
        "",
        f"- Both apps: `gunicorn {' '.join(app_args)}` on 127.0.0.1, both up for the whole "
        "run, loaded one at a time. Adapter: `adapter.web:create_app()`, SQLite store in a "
        "fresh temporary file, `GA_API_MAX_RPS=10000`, `PROXY_HOPS=0`. Baseline: "
        "`bench/baseline_app.py` (signature check, one create over a pooled httpx client, "
        "the Dial; no store).",
        f"- Sandbox: `gunicorn {' '.join(sandbox_args)}`, pool {POOL_SIZE} numbers, expiry "
        f"{args.expire_seconds:g} s, reset before every phase.",
        f"- Load: `wrk -t{args.wrk_threads} -c{args.connections} -d{args.duration}s "
        "--timeout 10s --latency`, Twilio-signed voice webhooks, a fresh CallSid each; "
        f"{args.warmup} s warm-up of each, then {args.rounds} rounds alternating baseline "
        "and adapter. Errors = socket errors + non-2xx + 2xx without a `<Number>` of the "
        "sandbox. CPU ms/req: user + system CPU of the loaded app's workers (of the sandbox) "
        "per answered webhook; GA creates/req: transfers the sandbox created per answered "
        "webhook; CPU busy: the whole machine (100 = every core), others: the part used by "
        "processes the benchmark did not start.",
        "",
        *table(phases),
        "",
        "| target | adapter / baseline (medians) | per round | verdict |",
        "| --- | ---: | --- | --- |",
        f"| req/s ≥ {TARGET_RPS_RATIO:.2f} | {verdict.rps_ratio:.3f} "
        f"| {per_round(phases, lambda p: p.wrk.rps)} | {mark(verdict.rps_ok)} |",
        f"| p99 ≤ {TARGET_P99_RATIO:.1f} | {verdict.p99_ratio:.3f} "
        f"| {per_round(phases, lambda p: p.wrk.p99_ms)} | {mark(verdict.p99_ok)} |",
        "",
        f"The adapter costs {cpu_extra:+.2f} ms of app CPU per webhook over the baseline "
        "(medians).",
        f"Adapter store (read back from the file): journal_mode={store.journal_mode} "
        f"(header bytes 18-19 say WAL: {'yes' if store.header_wal else 'NO'}), "
        f"synchronous={store.synchronous} on a connection opened by the adapter's store, "
        f"wal_autocheckpoint={store.wal_autocheckpoint} pages; {store.records} call records "
        f"({store.dialed_records} answered with a Dial; the sandbox had created "
        f"{store.adapter_transfers} adapter transfers when the phases ended, requests then in "
        f"flight add a few). fsync probe: {store.fsync_note}.",
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


# --- main --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else "")
    add = parser.add_argument
    add("--duration", type=int, default=15, help="seconds of load per round (15)")
    add("--rounds", type=int, default=3, help="rounds, each baseline then adapter (3)")
    add("--connections", type=int, default=32, help="wrk connections (32)")
    add("--wrk-threads", type=int, default=2, help="wrk threads (2)")
    add("--warmup", type=int, default=5, help="seconds of warm-up of each app (5)")
    add("--workers", type=int, default=2, help="gunicorn workers of each app (2)")
    add("--threads", type=int, default=8, help="gunicorn threads per app worker (8)")
    add("--sandbox-threads", type=int, default=16, help="threads of the sandbox worker (16)")
    add(
        "--expire-seconds",
        type=float,
        default=10.5,
        help="sandbox transfer expiry (10.5): numbers recycle after it, so the pool lasts up to"
        f" {POOL_SIZE}/this req/s; the adapter dials only numbers still valid for 10 s",
    )
    add(
        "--max-rate",
        type=float,
        default=2500.0,
        help="upper bound of req/s: signed requests made per phase = duration x this (2500)",
    )
    add("--settle", type=float, default=1.0, help="idle seconds before each phase (1)")
    add(
        "--quiet-wait",
        type=float,
        default=120.0,
        help="longest wait before a phase for other processes to leave the CPU (120)",
    )
    add("--fsync-probe", type=int, default=4, help="seconds of the strace probe, 0: none (4)")
    add("--results", type=Path, default=RESULTS_FILE, help="where to write the Markdown")
    add("--keep", action="store_true", help="keep the temporary directory (logs, store)")
    args = parser.parse_args(argv)
    if min(args.duration, args.rounds, args.connections, args.wrk_threads) < 1:
        parser.error("--duration, --rounds, --connections and --wrk-threads must be >= 1")
    if args.connections < args.wrk_threads:
        parser.error("--connections must be at least --wrk-threads")
    if args.expire_seconds <= 10:
        # The adapter's policy: 5 s of margin plus 5 s of ringing at least, or a new transfer.
        parser.error("--expire-seconds must be above 10, or the adapter never dials")
    return args


def server_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: os.environ[k] for k in PASS_THROUGH_ENV if k in os.environ}
    env.update(extra)
    return env


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: sudo apt-get install -y wrk", file=sys.stderr)
        return 2
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="genagent-bench-"))
    procs = Processes()
    store_path = tmp / "calls.sqlite3"
    app_args = [
        "-k",
        "gthread",
        "--workers",
        str(args.workers),
        "--threads",
        str(args.threads),
        "--keep-alive",
        "5",
        "--timeout",
        "30",
        "--graceful-timeout",
        "5",
    ]
    sandbox_args = ["-k", "gthread", "--workers", "1", "--threads", str(args.sandbox_threads)]
    sandbox_args += app_args[6:]
    try:
        print(f"temporary directory {tmp}", flush=True)
        sandbox = start_gunicorn(
            procs,
            "sandbox",
            "adapter.sandbox.app:create_sandbox_app_from_env()",
            sandbox_args,
            server_env(
                {
                    "SANDBOX_POOL_SIZE": str(POOL_SIZE),
                    "SANDBOX_EXPIRE_SECONDS": f"{args.expire_seconds:g}",
                    "SANDBOX_API_ID": GA_API_ID,
                    "SANDBOX_API_SECRET": GA_API_SECRET,
                }
            ),
            tmp,
        )
        common = {
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "GA_API_BASE_URL": sandbox.base_url,
            "GA_API_ID": GA_API_ID,
            "GA_API_SECRET": GA_API_SECRET,
        }
        apps = {
            "baseline": start_gunicorn(
                procs,
                "baseline",
                "bench.baseline_app:create_app()",
                app_args,
                server_env(common),
                tmp,
            ),
            "adapter": start_gunicorn(
                procs,
                "adapter",
                "adapter.web:create_app()",
                app_args,
                server_env(
                    {
                        **common,
                        "GA_API_MAX_RPS": "10000",
                        "STORE_URL": f"sqlite:///{store_path}",
                        "AGENT_DESTINATION": AGENT_DESTINATION,
                        "PROXY_HOPS": "0",
                        "LOG_LEVEL": "WARNING",
                    }
                ),
                tmp,
            ),
        }
        for server in (sandbox, *apps.values()):
            wait_ready(server)
        bench = Bench(args, tmp, sandbox, apps)
        print(
            f"sandbox :{sandbox.port}, baseline :{apps['baseline'].port}, "
            f"adapter :{apps['adapter'].port}; {args.rounds} rounds x {args.duration} s, "
            f"{args.connections} connections",
            flush=True,
        )
        for name in ("baseline", "adapter"):
            bench.run_phase("warm-up", name, args.warmup)
        phases: list[Phase] = []
        for round_no in range(1, args.rounds + 1):
            for name in ("baseline", "adapter"):
                phases.append(bench.run_phase(str(round_no), name, args.duration))
        store = inspect_store(store_path)
        store.adapter_transfers = sum(p.transfers for p in bench.history if p.server == "adapter")
        if args.fsync_probe > 0:
            store.fsync_note = fsync_probe(bench, args.fsync_probe)
        verdict = judge(phases)
        text = report(args, phases, verdict, store, app_args, sandbox_args)
        print()
        print(text)
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(text, encoding="utf-8")
        print(f"written to {args.results}")
        for server in (sandbox, *apps.values()):
            if server.proc.poll() is not None:
                raise BenchError(f"{server.name} died during the run:\n{server.log_tail()}")
        if verdict.invalid:
            return 2
        return 0 if verdict.passed else 1
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; stopping every process", file=sys.stderr)
        return 130
    finally:
        procs.close()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
