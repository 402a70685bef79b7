"""Count, per webhook (voice, or dial result), the CPU instructions and system calls of
the floor and the adapter: the same work every run, however busy the machine.

The driver (``driver.py``) runs in one process twice per app, with ``--base`` webhooks
and with ``--base`` + ``--calls``: the difference, divided by ``--calls``, is what one
webhook costs, start-up, imports and the dial result's preparation cancelled out.
Instructions are counted by valgrind's callgrind (every user-space instruction of the
process: Python, SQLite, OpenSSL...; not the kernel's), system calls by ``strace -f -c``.
The sandbox runs outside both, under gunicorn; the Redis runs use a private
redis-server, whose own work is not counted.
"""

from __future__ import annotations

import argparse
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.voice_webhook.main import AGENT_DESTINATION, GA_API_ID, GA_API_SECRET
from bench.voice_webhook.processes import (
    REPO,
    BenchError,
    Processes,
    server_env,
    start_gunicorn,
    start_redis,
    wait_ready,
)
from bench.voice_webhook.webhooks import AUTH_TOKEN

RESULTS = {
    "voice": REPO / "bench" / "results" / "webhook_work.md",
    "dial-result": REPO / "bench" / "results" / "webhook_work_dial_result.md",
}
_COLLECTED = re.compile(rb"Collected : (\d+)")
_STRACE_ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$")


@dataclass
class Work:
    """What one webhook costs an app: instructions, and system calls by name."""

    name: str
    instructions: float
    syscalls: dict[str, float]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="webhooks counted (200)")
    parser.add_argument("--base", type=int, default=50, help="webhooks of the shorter run (50)")
    parser.add_argument("--store", choices=("sqlite", "redis", "both"), default="both")
    parser.add_argument("--path", choices=("voice", "dial-result"), default="voice")
    parser.add_argument("--results", type=Path, help="the report (bench/results/webhook_work*.md)")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.base < 1:
        parser.error("--calls and --base must be at least 1")
    args.results = args.results or RESULTS[args.path]
    return args


@dataclass
class Runner:
    """Runs the driver for one app of one path, in an environment of its own."""

    which: str
    env: dict[str, str]
    args: argparse.Namespace
    tmp: Path

    def driver(self, prefix: list[str], count: int) -> bytes:
        """The driver under ``prefix`` (valgrind or strace); its stderr."""
        setup = self.args.base + self.args.calls  # the same in every run: it cancels out
        cmd = [*prefix, sys.executable, "-m", "bench.webhook_work.driver", self.args.path]
        cmd += [self.which, str(count), uuid.uuid4().hex[:12], str(setup)]
        done = subprocess.run(cmd, cwd=REPO, env=self.env, capture_output=True, timeout=1800)
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace")[-2000:]
            raise BenchError(f"{self.which} x{count} failed:\n{tail}")
        return done.stderr

    def instructions(self, count: int) -> int:
        err = self.driver(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"], count)
        found = _COLLECTED.search(err)
        if found is None:
            raise BenchError(f"callgrind printed no count for {self.which} x{count}")
        return int(found.group(1))

    def syscalls(self, count: int) -> dict[str, int]:
        out = self.tmp / f"strace-{uuid.uuid4().hex}.txt"
        self.driver(["strace", "-f", "-c", "-o", str(out)], count)
        counts: dict[str, int] = {}
        for line in out.read_text().splitlines():
            row = _STRACE_ROW.match(line)
            if row and row.group(2) != "total":
                counts[row.group(2)] = int(row.group(1))
        return counts


def measure(name: str, runner: Runner) -> Work:
    base, calls = runner.args.base, runner.args.calls
    longer = base + calls
    print(f"{name}: callgrind x{base}, x{longer}; strace x{base}, x{longer}", flush=True)
    spent = runner.instructions(longer) - runner.instructions(base)
    short, long = runner.syscalls(base), runner.syscalls(longer)
    per_call = {call: (long.get(call, 0) - short.get(call, 0)) / calls for call in {*short, *long}}
    kept = {call: n for call, n in per_call.items() if n >= 0.05}
    return Work(name, spent / calls, dict(sorted(kept.items(), key=lambda kv: -kv[1])))


def report(works: list[Work], args: argparse.Namespace, started: str) -> str:
    floor = works[0].instructions
    valgrind = subprocess.run(["valgrind", "--version"], capture_output=True, text=True)
    lines = [
        f"## {'Voice webhook' if args.path == 'voice' else 'Dial result'}: work per webhook,"
        " counted",
        "",
        f"Run {started} UTC, {platform.machine()}, Python {platform.python_version()}, "
        f"{valgrind.stdout.strip()}. "
        f"Command: `python3 bench/webhook_work.py --path {args.path} --calls {args.calls} "
        f"--base {args.base} --store {args.store}`. One process per count, the Flask test "
        "client, the sandbox "
        "under gunicorn outside the count; per webhook = (run of "
        f"{args.base + args.calls} - run of {args.base}) / {args.calls}.",
        "",
        "| app | instructions per webhook | / floor | system calls per webhook |",
        "| --- | ---: | ---: | --- |",
    ]
    for work in works:
        calls = ", ".join(f"{name} {n:.1f}" for name, n in work.syscalls.items())
        total = sum(work.syscalls.values())
        lines.append(
            f"| {work.name} | {work.instructions / 1e6:.2f} M | {work.instructions / floor:.3f} "
            f"| {total:.1f}: {calls} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("valgrind", "strace"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed: apt-get install -y {tool}", file=sys.stderr)
            return 2
    started = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    tmp = Path(tempfile.mkdtemp(prefix="genagent-work-"))
    procs = Processes()
    try:
        sandbox = start_gunicorn(
            procs,
            "sandbox",
            "adapter.sandbox.app:create_sandbox_app_from_env()",
            ["-k", "gthread", "--workers", "1", "--threads", "8"],
            server_env(
                {
                    "SANDBOX_POOL_SIZE": "40000",
                    "SANDBOX_EXPIRE_SECONDS": "600",
                    "SANDBOX_API_ID": GA_API_ID,
                    "SANDBOX_API_SECRET": GA_API_SECRET,
                }
            ),
            tmp,
        )
        wait_ready(sandbox)
        common = server_env(
            {
                "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "GA_API_BASE_URL": sandbox.base_url,
                "GA_API_ID": GA_API_ID,
                "GA_API_SECRET": GA_API_SECRET,
                "AGENT_DESTINATION": AGENT_DESTINATION,
                "GA_API_MAX_RPS": "10000",
                "PROXY_HOPS": "0",
                "LOG_LEVEL": "WARNING",
                "PYTHONHASHSEED": "0",  # the same dict layouts in every run
            }
        )
        # The floor keeps no state; its dial results' templates go through an adapter.
        scratch = {"STORE_URL": f"sqlite:///{tmp / 'templates.sqlite3'}"}
        works = [measure("floor", Runner("floor", {**common, **scratch}, args, tmp))]
        if args.store in ("sqlite", "both"):
            store = {"STORE_URL": f"sqlite:///{tmp / 'calls.sqlite3'}"}
            works.append(
                measure("adapter, SQLite", Runner("adapter", {**common, **store}, args, tmp))
            )
        if args.store in ("redis", "both"):
            redis_url = start_redis(procs, tmp).url
            store = {"STORE_URL": redis_url, "STORE_KEY_PREFIX": "work:"}
            works.append(
                measure("adapter, Redis", Runner("adapter", {**common, **store}, args, tmp))
            )
    except BenchError as exc:
        print(f"invalid run: {exc}", file=sys.stderr)
        return 2
    finally:
        procs.close()
        shutil.rmtree(tmp, ignore_errors=True)
    text = report(works, args, started)
    print(text)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(text)
    print(f"written to {args.results}")
    return 0
