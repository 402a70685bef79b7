#!/usr/bin/env python3
"""Asterisk worker benchmark: 1,000 calls in flight on one worker, latency and memory.

    python3 bench/asterisk_worker.py [--calls 1000] [--waves 5] [--window 10]
        [--load recorded|lean] [--unfiltered]

``--load`` and ``--unfiltered`` shape the AMI traffic (``bench/asterisk_load.py``): by
default the recordings' call, about 50 events a call, with the shipped eventfilter.

Three processes, on 127.0.0.1 only, none sharing an event loop:

1. the GenerativeAgent sandbox under gunicorn (one gthread worker: its state is in
   memory; pool 9900 numbers), wrapped by ``bench/asterisk_sandbox.py`` so that it
   times its own API answers;
2. the fake Asterisk (``tests.fake_ami.server.FakeAsterisk``) in its own asyncio loop,
   driven by ``bench/asterisk_fake.py`` over a loopback control channel;
3. the real worker, ``python -m adapter asterisk``, configured by environment only.

After an unmeasured warm-up (``--warmup`` calls), each wave hands N callers off evenly
over ``--window`` seconds; GenerativeAgent answers every dial (connected on the
sandbox), talks until ``--hold`` seconds after that caller's hand-off (so all N are in
flight at once), completes with an AGENT output context; the worker routes each caller
to ``genagent-agent``; the caller then hangs up.

Measured per call on the fake's side (``time.monotonic()``: CLOCK_MONOTONIC is shared
by processes on Linux):

- hand-off latency: first action the worker sends for the caller's channel, minus the
  emission of the GenerativeAgentTransfer UserEvent;
- dial-end latency: first Setvar/Redirect for the caller after the
  GenerativeAgentReturned UserEvent, minus its emission, minus the API's own latency for
  that call: the sandbox-side duration (from the request's socket turning readable in
  gunicorn to the last byte of the answer written) of the GET of that call's transfer.

Memory: the worker's VmRSS (with its threads and open files) before the first wave and
after each wave once all its calls ended; FLAT when it grew less than 5 MiB from wave 1
to the last wave. At the end the worker is stopped (SIGTERM) and its store must hold
every call, routed, and none active.

Also reported, to tell the worker's delays from the machine's: CPU per call of each
process, the CPU used by other processes, the fake's event-loop lag, major page faults,
and machine stalls (an idle thread of this process waking up late: on a VM all
processes stall together), with the p99s without the calls a stall touched.

Prints a Markdown table and PASS/FAIL (p99 < 10 ms for both latencies, in every wave;
N calls in flight at once; memory flat), and writes it to
``bench/results/asterisk_worker.md``. With ``--profile auto`` (the default) a missed
latency target is followed by one extra wave under ``py-spy record`` (not measured),
whose summary is added. Every process it starts is in its own process group and is
stopped on exit, failure or Ctrl-C. Exit status: 0 every target met, 1 a target missed,
2 the run is invalid (calls not routed as expected) or could not be set up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx

if __package__ in (None, ""):  # run as a script: make ``bench`` and ``tests`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.asterisk_load import LOADS, Load
from bench.voice_webhook.processes import (
    CLOCK_TICKS,
    HOST,
    REPO,
    MachineCpu,
    Processes,
    Server,
    cpu_seconds,
    free_port,
    raise_interrupt,
    server_env,
    spawn,
    start_gunicorn,
    stop,
    wait_ready,
)
from bench.voice_webhook.report import machine_description, version_of

RESULTS_FILE = REPO / "bench" / "results" / "asterisk_worker.md"
GA_API_ID = "bench-api-id"
GA_API_SECRET = "bench-api-secret"
AMI_USERNAME = "genagent-adapter"  # asterisk_conf/manager_genagent.conf, as the fake reads it
AMI_SECRET = "worker-secret"  # the secret the fake gives that user
# The client-side spike limiter must never engage: the sandbox has no limit, and a wait
# in the limiter would be counted as the worker's own latency. 10 000 is the most
# GA_API_MAX_RPS accepts; a wave needs at most N creates + N GETs in its window.
GA_API_MAX_RPS = 10_000
TARGET_P99_MS = 10.0
FLAT_GROWTH_KB = 5 * 1024
ROUTE_EXPECTED = "genagent-agent"
PROFILE_RATE = 200
WARMUP_WINDOW = 1.0
WARMUP_HOLD = 3.0
OTHERS_WARN_PCT = 10.0
STALL_MS = 5.0  # a wake-up this late in an idle process: the machine stalled
STALL_DRAIN = 0.05  # after a stall, seconds during which the backlog still delays calls
# Leaf frames of a thread that waits (py-spy cannot always tell): not counted as busy.
WAITING_FRAMES = frozenset(
    {
        "EpollSelector.select (selectors.py)",
        "_worker (concurrent/futures/thread.py)",
        "Condition.wait (threading.py)",
    }
)
# Inclusive shares in the profile summary: the adapter's frames (not its entry point) and
# where the libraries are entered.
ENTRY_FILES = ("(adapter/cli.py)", "(adapter/__main__.py)")
LIBRARY_ENTRIES = frozenset(
    {
        "AsyncClient.request (httpx/_client.py)",
        "AMIProtocol.send (panoramisk/ami_protocol.py)",
        "AMIProtocol.data_received (panoramisk/ami_protocol.py)",
        "to_thread (asyncio/threads.py)",
        "_SelectorSocketTransport.write (asyncio/selector_events.py)",
    }
)


class BenchError(Exception):
    """The run could not be set up or carried out."""


# --- the fake's control channel ----------------------------------------------------------


class Control:
    """JSON lines over a loopback socket to the fake Asterisk process."""

    def __init__(self, port: int, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        self.port = port
        self.proc = proc
        self.log_path = log_path
        self._sock: socket.socket | None = None
        self._file: IO[bytes] | None = None

    def connect(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"the fake Asterisk exited at start-up:\n{self.log_tail()}")
            try:
                self._sock = socket.create_connection((HOST, self.port), timeout=2.0)
                self._file = self._sock.makefile("rb")
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"the fake Asterisk's control port did not open:\n{self.log_tail()}"
                    ) from None
                time.sleep(0.2)

    def request(self, command: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        if self._sock is None or self._file is None:
            raise BenchError("not connected to the fake Asterisk")
        self._sock.settimeout(timeout)
        self._sock.sendall(json.dumps(command).encode() + b"\n")
        try:
            line = self._file.readline()
        except TimeoutError:
            raise BenchError(f"the fake Asterisk did not answer {command['cmd']!r}") from None
        if not line:
            raise BenchError(f"the fake Asterisk closed the control channel:\n{self.log_tail()}")
        answer: dict[str, Any] = json.loads(line)
        if not answer.get("ok"):
            raise BenchError(f"the fake Asterisk refused {command['cmd']!r}: {answer}")
        return answer

    def quit(self) -> None:
        """Ask the fake to stop (between waves only: it answers one command at a time)."""
        with contextlib.suppress(OSError, BenchError):
            if self._sock is not None and self.proc.poll() is None:
                self.request({"cmd": "quit"}, timeout=5.0)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._sock is not None:
            self._sock.close()

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.log_path, lines)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- the worker process ------------------------------------------------------------------


@dataclass(frozen=True)
class ProcStatus:
    """What /proc says about the worker: resident memory, threads, open files."""

    rss_kb: int
    threads: int
    fds: int

    @classmethod
    def read(cls, pid: int) -> ProcStatus:
        values: dict[str, str] = {}
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            values[key] = value.strip()
        return cls(
            rss_kb=int(values["VmRSS"].split()[0]),
            threads=int(values["Threads"]),
            fds=len(os.listdir(f"/proc/{pid}/fd")),
        )


def major_faults(pid: int) -> int:
    """Page faults of ``pid`` that had to read from disk (/proc/<pid>/stat majflt)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat[stat.rindex(")") + 2 :].split()[9])


def machine_major_faults() -> int:
    """Major page faults of the whole machine so far (/proc/vmstat pgmajfault)."""
    for line in Path("/proc/vmstat").read_text().splitlines():
        name, _, value = line.partition(" ")
        if name == "pgmajfault":
            return int(value)
    return 0


class StallWatch:
    """Moments when this idle process could not run for a while: the machine stalled.

    A thread that sleeps 1 ms in a loop, in the benchmark's own (otherwise idle)
    process, notes every wake-up late by ``STALL_MS`` or more. On this kind of VM all
    processes stall together (the host pauses the guest), which no worker can avoid: the
    report shows these stalls and, as a diagnostic, the latencies without the calls whose
    measurement overlapped one.
    """

    def __init__(self) -> None:
        self.stalls: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="stall-watch", daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            before = time.monotonic()
            time.sleep(0.001)
            after = time.monotonic()
            if after - before - 0.001 >= STALL_MS / 1000:
                self.stalls.append((before + 0.001, after))

    def __enter__(self) -> StallWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(2.0)


def touched(start: float, end: float, stalls: Sequence[tuple[float, float]]) -> bool:
    """Whether [start, end] overlaps a stall or the time the worker needs to catch up."""
    return any(s0 < end and start < s1 + STALL_DRAIN for s0, s1 in stalls)


# --- statistics ----------------------------------------------------------------------------


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
    events_per_call: dict[str, float] = field(default_factory=dict)


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
        events_per_call=dict(answer.get("events_per_call", {})),
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
    if int(answer["unfinished"]):
        wave.problems["wave timed out"] += 1
    return wave


def _api_seconds(spans: list[tuple[float, float]], after: float, before: float) -> float | None:
    """Total sandbox time of the requests made for one call between two of its events."""
    # The sandbox may note its end a little after the worker already acted on the answer
    # (the thread lost the GIL after writing): the API's time stops at the action.
    inside = [min(end, before) - ready for ready, end in spans if after <= ready <= before]
    return sum(inside) if inside else None


# --- the run -----------------------------------------------------------------------------


@dataclass
class Rig:
    """The three processes of the run."""

    args: argparse.Namespace
    tmp: Path
    sandbox: Server
    control: Control
    fake_proc: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]
    worker_log: Path
    store_path: Path
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30.0))
    calls_run: int = 0

    def check_alive(self) -> None:
        for name, proc, log in (
            ("worker", self.worker, self.worker_log),
            ("fake Asterisk", self.fake_proc, self.control.log_path),
            ("sandbox", self.sandbox.proc, self.sandbox.log_path),
        ):
            if proc.poll() is not None:
                raise BenchError(f"the {name} exited ({proc.returncode}):\n{tail(log)}")

    def wait_worker_ready(self, timeout: float = 30.0) -> None:
        """Logged in, dialplan checked, resynchronised (its CoreShowChannels seen)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            status = self.control.request({"cmd": "status"})
            if status["resyncs"] >= 1:
                time.sleep(0.5)  # the resync's store read and the first heartbeat wait
                return
            time.sleep(0.2)
        raise BenchError(f"the worker did not get ready:\n{tail(self.worker_log)}")

    def sandbox_pids(self) -> list[int]:
        return self.sandbox.workers()

    def run_wave(
        self, number: int, calls: int | None = None, window: float = 0.0, hold: float = 0.0
    ) -> Wave:
        """One wave: ``calls``, ``window`` and ``hold`` default to the command line's."""
        args = self.args
        calls = args.calls if calls is None else calls
        window, hold = window or args.window, hold or args.hold
        base = self.sandbox.base_url
        self.http.post(f"{base}/sandbox/reset").raise_for_status()
        self.http.delete(f"{base}/bench/timings").raise_for_status()
        pids = {
            "worker": [self.worker.pid],
            "fake": [self.fake_proc.pid],
            "sandbox": self.sandbox_pids(),
        }
        cpu0 = {name: cpu_seconds(p) for name, p in pids.items()}
        machine0 = MachineCpu.read()
        faults0 = (major_faults(self.worker.pid), machine_major_faults())
        timeout = window + hold + args.wave_timeout
        with StallWatch() as watch:
            answer = self.control.request(
                {
                    "cmd": "wave",
                    "calls": calls,
                    "window": window,
                    "hold": hold,
                    "talk": args.talk,
                    "hangup_after": args.hangup_after,
                    "timeout": timeout,
                },
                timeout=timeout + 60,
            )
        self.calls_run += len(answer["calls"])
        machine1 = MachineCpu.read()
        faults1 = (major_faults(self.worker.pid), machine_major_faults())
        cpu1 = {name: cpu_seconds(p) for name, p in pids.items()}
        timings = self.http.get(f"{base}/bench/timings").json()["requests"]
        wave = analyse(number, answer, timings, watch.stalls)
        wave.worker_major_faults = faults1[0] - faults0[0]
        wave.machine_major_faults = faults1[1] - faults0[1]
        per_call = 1000 / max(1, wave.calls)
        wave.worker_cpu_ms = (cpu1["worker"] - cpu0["worker"]) * per_call
        wave.fake_cpu_ms = (cpu1["fake"] - cpu0["fake"]) * per_call
        wave.sandbox_cpu_ms = (cpu1["sandbox"] - cpu0["sandbox"]) * per_call
        ticks = max(1, machine1.total - machine0.total)
        wave.busy_pct = 100 * (machine1.busy - machine0.busy) / ticks
        ours = sum(cpu1.values()) - sum(cpu0.values())
        wave.others_pct = max(0.0, wave.busy_pct - 100 * ours * CLOCK_TICKS / ticks)
        wave.steal_pct = 100 * (machine1.steal - machine0.steal) / ticks
        time.sleep(args.settle)  # the last hang-ups reach the worker; its tasks finish
        self.check_alive()
        wave.after = ProcStatus.read(self.worker.pid)
        return wave


def print_wave(wave: Wave) -> None:
    hand, dial = Summary.of(wave.handoff_ms), Summary.of(wave.dial_end_ms)
    api = Summary.of(wave.dial_end_api_ms)
    after = wave.after
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
        f" AMI events/call {wave.events_per_call.get('emitted', 0):.1f} emitted,"
        f" {wave.events_per_call.get('delivered', 0):.1f} delivered;"
        f" RSS {after.rss_kb / 1024 if after else math.nan:.1f} MiB"
        + (f"; PROBLEMS {dict(wave.problems)}" if wave.problems else ""),
        flush=True,
    )


# --- profile -------------------------------------------------------------------------------


def profile_wave(rig: Rig, number: int) -> str:
    """One more wave with py-spy sampling the worker; a summary of where its time goes."""
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        return "not profiled: py-spy is not installed (`pip install py-spy`)"
    out = rig.tmp / "worker-profile.txt"
    cmd = [py_spy, "record", "--pid", str(rig.worker.pid), "--rate", str(PROFILE_RATE)]
    cmd += ["--threads", "--nolineno", "--format", "raw", "--output", str(out)]
    with (rig.tmp / "py-spy.log").open("wb") as log:
        tracer = spawn(cmd, env=None, log=log)
    try:
        time.sleep(1.0)  # attached
        if tracer.poll() is not None:
            log_tail = tail(rig.tmp / "py-spy.log")
            return f"not profiled: py-spy exited {tracer.returncode}: {log_tail}"
        wave = rig.run_wave(number)
        print_wave(wave)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(tracer.pid, signal.SIGINT)  # py-spy writes its output on SIGINT
        with contextlib.suppress(subprocess.TimeoutExpired):
            tracer.wait(30)
        stop(tracer, grace=2.0)
    if not out.exists():
        return f"not profiled: py-spy wrote nothing: {tail(rig.tmp / 'py-spy.log')}"
    if rig.args.keep:
        print(f"py-spy samples kept in {out}", flush=True)
    return summarise_profile(out.read_text(errors="replace"))


def _frame_label(frame: str) -> str:
    """``name (path/to/file.py)`` -> ``name (short/path.py)``: adapter/, package, stdlib."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    if "/adapter/" in path or path.startswith("adapter/"):
        short = "adapter/" + path.split("adapter/", 1)[1]
    elif "site-packages/" in path:
        short = path.split("site-packages/", 1)[1]
    elif "/lib/python3" in path:
        short = path.split("/lib/python3", 1)[1].split("/", 1)[-1]
    else:
        short = path
    return f"{name} ({short})"


def _thread_group(name: str) -> str:
    if name == "MainThread":
        return "event loop (MainThread)"
    if name.startswith("asyncio_"):
        return "store threads (asyncio.to_thread)"
    return name


def summarise_profile(raw: str, top: int = 12) -> str:
    """py-spy raw output (``thread (tid): name;frame;...;frame count``) as Markdown."""
    stacks: list[tuple[str, list[str], int]] = []
    for line in raw.splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        head, *frames = stack.split(";")
        thread = head.split(": ", 1)[1] if head.startswith("thread (") else head
        labels = [_frame_label(f) for f in frames]
        if labels and labels[-1] in WAITING_FRAMES:
            continue  # blocked in epoll or on the pool's queue: idle, whatever py-spy says
        stacks.append((_thread_group(thread), labels, int(samples)))
    total = sum(count for _, _, count in stacks)
    if not total:
        return "not profiled: no samples"
    per_thread: Counter[str] = Counter()
    for group, _, count in stacks:
        per_thread[group] += count
    loop = "event loop (MainThread)"
    loop_total = per_thread[loop] or 1
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for group, frames, count in stacks:
        if group != loop or not frames:
            continue
        own[frames[-1]] += count
        for label in set(frames):
            adapter = "adapter/" in label and not label.endswith(ENTRY_FILES)
            if adapter or label in LIBRARY_ENTRIES:
                inclusive[label] += count
    lines = [
        f"py-spy, {PROFILE_RATE} Hz, one extra wave (not measured); samples waiting in epoll "
        f"or on the thread pool's queue left out: {total} busy samples; "
        + ", ".join(f"{group} {100 * n / total:.0f} %" for group, n in per_thread.most_common())
        + ".",
        "",
        "| event loop, self time: function (file) | % of loop samples |",
        "| --- | ---: |",
        *(f"| `{label}` | {100 * n / loop_total:.1f} |" for label, n in own.most_common(top)),
        "",
        "| event loop, inclusive: adapter/ and library entry points | % of loop samples |",
        "| --- | ---: |",
        *(
            f"| `{label}` | {100 * n / loop_total:.1f} |"
            for label, n in inclusive.most_common(top + 8)
        ),
    ]
    return "\n".join(lines)


# --- end of run checks ---------------------------------------------------------------------


@dataclass
class StoreCheck:
    active_ids: int
    records: int
    outcomes: dict[str, int]
    routes: dict[str, int]


def check_store(path: Path) -> StoreCheck:
    """After the worker stopped: no call still active, and how every call ended."""
    from adapter.store.sqlite import SQLiteCallStore  # the adapter's own query

    store = SQLiteCallStore(str(path))
    try:
        active = store.active_ids()
    finally:
        store.close()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        outcomes = dict(
            conn.execute(
                "SELECT coalesce(json_extract(data, '$.outcome'), '-'), count(*)"
                " FROM calls GROUP BY 1"
            ).fetchall()
        )
        routes = dict(
            conn.execute(
                "SELECT coalesce(json_extract(data, '$.route.kind'), '-'), count(*)"
                " FROM calls GROUP BY 1"
            ).fetchall()
        )
    finally:
        conn.close()
    return StoreCheck(len(active), sum(outcomes.values()), outcomes, routes)


# --- report --------------------------------------------------------------------------------


@dataclass
class Verdict:
    handoff_p99: float
    dial_end_p99: float
    peak_ok: bool
    growth_kb: int
    worker_exit: int | None
    invalid: list[str]

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
    def passed(self) -> bool:
        return self.latency_ok and self.peak_ok and self.memory_ok and not self.invalid


def judge(
    args: argparse.Namespace,
    waves: Sequence[Wave],
    store: StoreCheck,
    worker_exit: int | None,
    calls_run: int,
) -> Verdict:
    """``calls_run``: every call of the run, a profiled wave's included (they are stored)."""
    invalid = [f"wave {w.number}: {dict(w.problems)}" for w in waves if w.problems]
    if store.active_ids:
        invalid.append(f"{store.active_ids} calls still active in the store")
    if store.routes.get("agent", 0) != calls_run or store.records != calls_run:
        invalid.append(f"store routes {store.routes}, expected {calls_run} agent")
    if worker_exit != 0:
        invalid.append(f"the worker exited {worker_exit} on SIGTERM")
    rss = [w.after.rss_kb for w in waves if w.after]
    return Verdict(
        handoff_p99=max(Summary.of(w.handoff_ms).p99 for w in waves),
        dial_end_p99=max(Summary.of(w.dial_end_ms).p99 for w in waves),
        peak_ok=all(w.peak_in_flight >= args.calls for w in waves),
        growth_kb=rss[-1] - rss[0] if rss else 0,
        worker_exit=worker_exit,
        invalid=invalid,
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


def _events(waves: Sequence[Wave], key: str) -> str:
    return f"{sum(w.events_per_call.get(key, 0) for w in waves) / len(waves):.1f}"


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
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rate = args.calls / args.window
    rows = [
        "| wave | peak in flight (in the dial) | hand-off ms p50 / p90 / p99 / max "
        "| dial-end ms beyond the API: p50 / p90 / p99 / max | API ms p50 / p99 "
        "| CPU ms/call: worker / fake / sandbox | box busy % (others) "
        "| machine stalls: n, max ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for w in waves:
        api = Summary.of(w.dial_end_api_ms)
        rows.append(
            f"| {w.number} | {w.peak_in_flight} ({w.peak_in_dial}) "
            f"| {_ms(Summary.of(w.handoff_ms))} | {_ms(Summary.of(w.dial_end_ms))} "
            f"| {api.p50:.2f} / {api.p99:.2f} "
            f"| {w.worker_cpu_ms:.2f} / {w.fake_cpu_ms:.2f} / {w.sandbox_cpu_ms:.2f} "
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
        "| worker | VmRSS MiB | threads | open fds |",
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
        f"## Asterisk worker: {args.calls:,} calls in flight",
        "",
        f"Run {now} on {machine_description()}; Linux {platform.release()}, "
        f"Python {platform.python_version()}, panoramisk {version_of('panoramisk')}, "
        f"httpx {version_of('httpx')}, gunicorn {version_of('gunicorn')}. Command: "
        f"`python3 bench/asterisk_worker.py --calls {args.calls} --waves {args.waves} "
        f"--window {args.window:g} --hold {args.hold:g} --load {args.load}"
        f"{' --unfiltered' if args.unfiltered else ''}`.",
        "",
        f"- AMI traffic: {Load(args.load, not args.unfiltered).describe()}; per call "
        f"{_events(waves, 'emitted')} events emitted, {_events(waves, 'delivered')} "
        "written to the worker's session.",
        "",
        "- Worker: `python -m adapter asterisk`, configured by environment only: the fake's "
        f"AMI on 127.0.0.1 as `{AMI_USERNAME}` (least privilege), "
        f"`GA_API_MAX_RPS={GA_API_MAX_RPS}` (the sandbox has no spike limit, and a wait in "
        "the client's limiter would count as the worker's latency; the default 100/s would "
        "hold a wave's creates back), SQLite store in a fresh temporary file, "
        "`LOG_LEVEL=WARNING`.",
        f"- Sandbox: `gunicorn {' '.join(sandbox_args)}`, pool 9900 numbers, expiry "
        f"{args.expire_seconds:g} s, reset before every wave.",
        "- Fake Asterisk (`tests.fake_ami`, its own process and event loop): "
        f"{warmup}{len(waves)} waves of {args.calls} callers handed off evenly over "
        f"{args.window:g} s ({rate:.0f}/s); each dial is answered, GenerativeAgent connected "
        f"on the sandbox and talking until {args.hold:g} s after that caller's hand-off (so all "
        f"{args.calls} are in flight at once), then completed (AGENT) and "
        f"`DialOutcome('ANSWER', talk={args.talk:g})`; routed callers hang up "
        f"{args.hangup_after:g} s later.",
        "- Hand-off latency: the worker's first action on the caller's channel minus the "
        "GenerativeAgentTransfer UserEvent. Dial-end latency: its first Setvar/Redirect after "
        "the GenerativeAgentReturned UserEvent minus that event, minus the API's own latency: "
        "the sandbox's time for that call's GET, from gunicorn seeing the request's socket "
        "readable to the last byte written. All on CLOCK_MONOTONIC; the fake stamps an "
        "action when it handles it, so its own delays can only add to the worker's figures.",
        "",
        *rows,
        "",
        f"Also measured: hand-off to the dial Redirect, beyond the create's API time, p50 "
        f"{to_dial.p50:.2f} ms, p99 {to_dial.p99:.2f} ms (Status, the GA_ Getvars, a store "
        "write, two Setvars).",
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
        f"({growth_pct:+.1f} %); least-squares slope {slope:+.0f} bytes per call. The worker "
        f"stopped on SIGTERM with exit status {verdict.worker_exit}; its store then held "
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
    ]
    busy = max(w.others_pct for w in waves)
    if busy >= OTHERS_WARN_PCT:
        lines += [
            "",
            f"**Other processes used up to {busy:.0f} % of the machine during a wave**: "
            "the latencies above are not the worker's alone.",
        ]
    if profile:
        lines += ["", "### Where the worker's time goes", "", profile]
    if verdict.invalid:
        lines += ["", "**INVALID RUN**: " + "; ".join(verdict.invalid) + "."]
    lines += ["", f"**Overall: {'PASS' if verdict.passed else 'FAIL'}**", ""]
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else "")
    add = parser.add_argument
    add("--calls", type=int, default=1000, help="callers per wave, all in flight at once (1000)")
    add("--waves", type=int, default=5, help="waves (5)")
    add("--window", type=float, default=10.0, help="seconds over which a wave is handed off (10)")
    add(
        "--hold",
        type=float,
        default=None,
        help="seconds from a caller's hand-off until GenerativeAgent hangs up (window + 5)",
    )
    add("--talk", type=float, default=0.02, help="DialOutcome talk after the completion (0.02)")
    add("--hangup-after", type=float, default=0.05, help="routed callers hang up after (0.05)")
    add(
        "--warmup",
        type=int,
        default=100,
        help="calls of an unmeasured warm-up wave before wave 1 (100; 0: none)",
    )
    add("--settle", type=float, default=3.0, help="idle seconds after a wave before RSS (3)")
    add("--wave-timeout", type=float, default=60.0, help="extra seconds a wave may take (60)")
    add("--sandbox-threads", type=int, default=16, help="threads of the sandbox worker (16)")
    add(
        "--profile",
        choices=("auto", "always", "never"),
        default="auto",
        help="extra wave under py-spy: when a latency target is missed (auto), always, never",
    )
    add("--load", choices=LOADS, default="recorded", help="AMI events per call (recorded)")
    add("--unfiltered", action="store_true", help="the worker's AMI user without eventfilter")
    add("--results", type=Path, default=RESULTS_FILE, help="where to write the Markdown")
    add("--keep", action="store_true", help="keep the temporary directory (logs, store)")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.waves < 2 or args.window <= 0:
        parser.error("--calls >= 1, --waves >= 2 and --window > 0 are needed")
    if args.hold is None:
        args.hold = args.window + 5.0
    if args.hold <= args.window:
        parser.error("--hold must exceed --window, or the calls are never all in flight at once")
    args.expire_seconds = math.ceil(args.window + args.hold + 60)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, raise_interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="genagent-bench-ami-"))
    procs = Processes()
    control: Control | None = None
    store_path = tmp / "calls.sqlite3"
    sandbox_args = [
        "-k",
        "bench.asterisk_sandbox.TimedThreadWorker",
        "--workers",
        "1",
        "--threads",
        str(args.sandbox_threads),
        "--keep-alive",
        "75",
        "--timeout",
        "60",
        "--graceful-timeout",
        "5",
    ]
    try:
        print(f"temporary directory {tmp}", flush=True)
        sandbox = start_gunicorn(
            procs,
            "sandbox",
            "bench.asterisk_sandbox:create_app()",
            sandbox_args,
            server_env(
                {
                    "SANDBOX_POOL_SIZE": "9900",
                    "SANDBOX_EXPIRE_SECONDS": f"{args.expire_seconds:g}",
                    "SANDBOX_API_ID": GA_API_ID,
                    "SANDBOX_API_SECRET": GA_API_SECRET,
                }
            ),
            tmp,
        )
        wait_ready(sandbox)
        ami_port, control_port = free_port(), free_port()
        fake_log = tmp / "fake.log"
        with fake_log.open("wb") as log:
            fake_proc = procs.add(
                spawn(
                    [
                        sys.executable,
                        "-m",
                        "bench.asterisk_fake",
                        "--ami-port",
                        str(ami_port),
                        "--control-port",
                        str(control_port),
                        "--sandbox",
                        sandbox.base_url,
                        "--load",
                        args.load,
                        *(["--unfiltered"] if args.unfiltered else []),
                    ],
                    env=server_env({}),
                    log=log,
                )
            )
        control = Control(control_port, fake_proc, fake_log)
        control.connect()
        worker_log = tmp / "worker.log"
        worker_env = server_env(
            {
                "AMI_HOST": HOST,
                "AMI_PORT": str(ami_port),
                "AMI_USERNAME": AMI_USERNAME,
                "AMI_SECRET": AMI_SECRET,
                "GA_API_BASE_URL": sandbox.base_url,
                "GA_API_ID": GA_API_ID,
                "GA_API_SECRET": GA_API_SECRET,
                "GA_API_MAX_RPS": str(GA_API_MAX_RPS),
                "STORE_URL": f"sqlite:///{store_path}",
                "LOG_LEVEL": "WARNING",
            }
        )
        with worker_log.open("wb") as log:
            worker = procs.add(
                spawn([sys.executable, "-m", "adapter", "asterisk"], env=worker_env, log=log)
            )
        rig = Rig(args, tmp, sandbox, control, fake_proc, worker, worker_log, store_path)
        rig.wait_worker_ready()
        fresh = ProcStatus.read(worker.pid)
        print(
            f"sandbox :{sandbox.port}, fake AMI :{ami_port}, worker pid {worker.pid}"
            f" (RSS {fresh.rss_kb / 1024:.1f} MiB); {args.waves} waves of {args.calls} calls"
            f" handed off over {args.window:g} s, held {args.hold:g} s",
            flush=True,
        )
        if args.warmup:
            warm = rig.run_wave(0, args.warmup, WARMUP_WINDOW, WARMUP_HOLD)
            print(
                f"  warm-up: {warm.calls} calls (not measured)"
                + (f"; PROBLEMS {dict(warm.problems)}" if warm.problems else ""),
                flush=True,
            )
        before = ProcStatus.read(worker.pid)
        waves: list[Wave] = []
        for number in range(1, args.waves + 1):
            wave = rig.run_wave(number)
            print_wave(wave)
            waves.append(wave)
        missed = (
            max(Summary.of(w.handoff_ms).p99 for w in waves) >= TARGET_P99_MS
            or max(Summary.of(w.dial_end_ms).p99 for w in waves) >= TARGET_P99_MS
        )
        profile = None
        if args.profile == "always" or (args.profile == "auto" and missed):
            print("profiling the worker during one extra wave (not counted)", flush=True)
            profile = profile_wave(rig, args.waves + 1)
        stop(worker)  # SIGTERM: the worker stops by itself
        control.quit()
        store = check_store(store_path)
        verdict = judge(args, waves, store, worker.returncode, rig.calls_run)
        text = report(args, waves, (fresh, before), store, verdict, sandbox_args, profile)
        print()
        print(text)
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(text, encoding="utf-8")
        print(f"written to {args.results}")
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
        if control is not None:
            control.close()
        procs.close()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
