#!/usr/bin/env python3
"""Asterisk worker benchmark: 1,000 calls in flight, on one worker or shared by several.

    python3 bench/asterisk_worker.py [--calls 1000] [--waves 5] [--window 10]
    python3 bench/asterisk_worker.py --workers 2      # active-active, on a Redis store
    python3 bench/asterisk_worker.py --load recorded|lean [--unfiltered]

``--load`` and ``--unfiltered`` shape the AMI traffic (``bench/asterisk_load.py``): by
default the recordings' call, about 50 events a call, with the shipped eventfilter.

Processes on 127.0.0.1 only, none sharing an event loop (the parts live in
``bench/asterisk/``):

1. the GenerativeAgent sandbox under gunicorn (one gthread worker: its state is in
   memory; pool 9900 numbers), wrapped by ``bench/asterisk/sandbox.py`` so that it
   times its own API answers;
2. the fake Asterisk (``tests.fake_ami.server.FakeAsterisk``) in its own asyncio loop,
   driven by ``bench/asterisk/fake.py`` over a loopback control channel; it sends every
   event to every logged-in worker, as Asterisk does;
3. with ``--store redis`` (the default for several workers) a private redis-server;
4. the real worker(s), ``python -m adapter asterisk``, configured by environment only.

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

Memory: the workers' VmRSS (summed, with their threads and open files) before the first
wave and after each wave once all its calls ended; FLAT when it grew less than 5 MiB from wave 1
to the last wave. At the end the workers are stopped (SIGTERM) and the store must hold
every call, routed, and none active.

Also reported, to tell the worker's delays from the machine's: CPU per call of each
process, the CPU used by other processes, the fake's event-loop lag, major page faults,
and machine stalls (an idle thread of this process waking up late: on a VM all
processes stall together), with the p99s without the calls a stall touched.

Prints a Markdown table and PASS/FAIL (p99 < 10 ms for both latencies, in every wave;
N calls in flight at once; memory flat; no decision carried out twice: the fake counts
each call's Redirects and the Setvars of GA_TRANSFER_NUMBER and GA_TRANSFER_TYPE), and
writes it to ``bench/results/asterisk_worker.md`` (``asterisk_workers_redis.md`` with
several workers). With ``--profile auto`` (the default) a missed
latency target is followed by one extra wave under ``py-spy record`` (not measured),
whose summary is added. Every process it starts is in its own process group and is
stopped on exit, failure or Ctrl-C. Exit status: 0 every target met, 1 a target missed,
2 the run is invalid (calls not routed as expected) or could not be set up.
"""

from __future__ import annotations

import argparse
import math
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` and ``tests`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.asterisk.config import (
    RESULTS_FILE,
    RESULTS_FILE_SHARED,
    TARGET_P99_MS,
    WARMUP_HOLD,
    WARMUP_WINDOW,
)
from bench.asterisk.control import BenchError
from bench.asterisk.machine import ProcStatus
from bench.asterisk.profile import profile_wave
from bench.asterisk.report import check_store, judge, report
from bench.asterisk.rig import Rig, sandbox_args, start_rig
from bench.asterisk.waves import Summary, Wave, print_wave
from bench.asterisk_load import LOADS
from bench.voice_webhook.processes import Processes, raise_interrupt, stop


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
    add("--workers", type=int, default=1, help="AMI workers sharing the calls (1)")
    add("--load", choices=LOADS, default="recorded", help="AMI events per call (recorded)")
    add("--unfiltered", action="store_true", help="the worker's AMI user without eventfilter")
    add(
        "--store",
        choices=("sqlite", "redis"),
        default=None,
        help="the call store: sqlite (one worker only) or a private redis-server"
        " (default: sqlite for one worker, redis for several)",
    )
    add(
        "--results",
        type=Path,
        default=None,
        help="where to write the Markdown (bench/results/asterisk_worker.md, or"
        " asterisk_workers_redis.md for several workers)",
    )
    add("--keep", action="store_true", help="keep the temporary directory (logs, store)")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.waves < 2 or args.window <= 0 or args.workers < 1:
        parser.error("--calls >= 1, --waves >= 2, --window > 0 and --workers >= 1 are needed")
    args.store = args.store or ("redis" if args.workers > 1 else "sqlite")
    if args.store == "sqlite" and args.workers > 1:
        parser.error("several workers need --store redis: with SQLite only one may run")
    if args.results is None:
        args.results = RESULTS_FILE_SHARED if args.workers > 1 else RESULTS_FILE
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
    rig: Rig | None = None
    try:
        print(f"temporary directory {tmp}", flush=True)
        rig = start_rig(args, tmp, procs)
        fresh = ProcStatus.total(rig.worker_pids)
        print(
            f"sandbox :{rig.sandbox.port}, store {args.store}, worker pids {rig.worker_pids}"
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
        before = ProcStatus.total(rig.worker_pids)
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
        for worker in rig.workers:
            stop(worker.proc)  # SIGTERM: the worker stops by itself
        exits = [worker.proc.returncode for worker in rig.workers]
        rig.control.quit()
        store = check_store(rig.store_url)
        worker_exit = next((code for code in exits if code != 0), 0)
        verdict = judge(args, waves, store, worker_exit, rig.calls_run)
        text = report(args, waves, (fresh, before), store, verdict, sandbox_args(args), profile)
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
        if rig is not None:
            rig.control.close()
        procs.close()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
