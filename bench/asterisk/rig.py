"""The processes of a run, started and driven: the sandbox, the fake Asterisk, Redis when
the workers share a Redis store, and one or more workers (``python -m adapter asterisk``,
configured by environment only)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from bench.asterisk.config import (
    AMI_SECRET,
    AMI_USERNAME,
    GA_API_ID,
    GA_API_MAX_RPS,
    GA_API_SECRET,
    STORE_KEY_PREFIX,
)
from bench.asterisk.control import BenchError, Control, tail
from bench.asterisk.machine import ProcStatus, StallWatch, machine_major_faults, major_faults
from bench.asterisk.waves import Wave, analyse
from bench.voice_webhook.processes import (
    CLOCK_TICKS,
    HOST,
    MachineCpu,
    Processes,
    Server,
    cpu_seconds,
    free_port,
    server_env,
    spawn,
    start_gunicorn,
    wait_ready,
)

SANDBOX_ARGS = [
    "-k",
    "bench.asterisk.sandbox.TimedThreadWorker",
    "--workers",
    "1",
    "--keep-alive",
    "75",
    "--timeout",
    "60",
    "--graceful-timeout",
    "5",
]


@dataclass
class Worker:
    """One ``python -m adapter asterisk`` process."""

    proc: subprocess.Popen[bytes]
    log: Path


@dataclass
class Rig:
    """Every process of the run."""

    args: argparse.Namespace
    tmp: Path
    sandbox: Server
    control: Control
    fake_proc: subprocess.Popen[bytes]
    workers: list[Worker]
    store_url: str
    redis_proc: subprocess.Popen[bytes] | None = None
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30.0))
    calls_run: int = 0

    @property
    def worker_pids(self) -> list[int]:
        return [w.proc.pid for w in self.workers]

    def check_alive(self) -> None:
        named = [(f"worker {n + 1}", w.proc, w.log) for n, w in enumerate(self.workers)]
        named += [
            ("fake Asterisk", self.fake_proc, self.control.log_path),
            ("sandbox", self.sandbox.proc, self.sandbox.log_path),
        ]
        if self.redis_proc is not None:
            named.append(("redis-server", self.redis_proc, self.tmp / "redis.log"))
        for name, proc, log in named:
            if proc.poll() is not None:
                raise BenchError(f"the {name} exited ({proc.returncode}):\n{tail(log)}")

    def wait_workers_ready(self, timeout: float = 30.0) -> None:
        """Every worker logged in, its dialplan checked, resynchronised."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            status = self.control.request({"cmd": "status"})
            if status["resyncs"] >= len(self.workers):
                time.sleep(1.0)  # the resync's store read, the first lease heartbeat
                return
            time.sleep(0.2)
        logs = "\n".join(tail(w.log) for w in self.workers)
        raise BenchError(f"the workers did not get ready:\n{logs}")

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
            "worker": self.worker_pids,
            "fake": [self.fake_proc.pid],
            "sandbox": self.sandbox.workers(),
            "redis": [self.redis_proc.pid] if self.redis_proc else [],
        }
        cpu0 = {name: cpu_seconds(p) for name, p in pids.items()}
        machine0 = MachineCpu.read()
        faults0 = (sum(major_faults(p) for p in self.worker_pids), machine_major_faults())
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
        faults1 = (sum(major_faults(p) for p in self.worker_pids), machine_major_faults())
        cpu1 = {name: cpu_seconds(p) for name, p in pids.items()}
        timings = self.http.get(f"{base}/bench/timings").json()["requests"]
        wave = analyse(number, answer, timings, watch.stalls)
        wave.worker_major_faults = faults1[0] - faults0[0]
        wave.machine_major_faults = faults1[1] - faults0[1]
        per_call = 1000 / max(1, wave.calls)
        wave.worker_cpu_ms = (cpu1["worker"] - cpu0["worker"]) * per_call
        wave.fake_cpu_ms = (cpu1["fake"] - cpu0["fake"]) * per_call
        wave.sandbox_cpu_ms = (cpu1["sandbox"] - cpu0["sandbox"]) * per_call
        wave.redis_cpu_ms = (cpu1["redis"] - cpu0["redis"]) * per_call
        ticks = max(1, machine1.total - machine0.total)
        wave.busy_pct = 100 * (machine1.busy - machine0.busy) / ticks
        ours = sum(cpu1.values()) - sum(cpu0.values())
        wave.others_pct = max(0.0, wave.busy_pct - 100 * ours * CLOCK_TICKS / ticks)
        wave.steal_pct = 100 * (machine1.steal - machine0.steal) / ticks
        time.sleep(args.settle)  # the last hang-ups reach the workers; their tasks finish
        self.check_alive()
        wave.after = ProcStatus.total(self.worker_pids)
        return wave


def start_rig(args: argparse.Namespace, tmp: Path, procs: Processes) -> Rig:
    """Start every process, the workers last; returns once they are ready."""
    sandbox = start_gunicorn(
        procs,
        "sandbox",
        "bench.asterisk.sandbox:create_app()",
        sandbox_args(args),
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
    redis_proc, store_url = None, f"sqlite:///{tmp / 'calls.sqlite3'}"
    if args.store == "redis":
        redis_proc, store_url = start_redis(procs, tmp)
    ami_port, control_port = free_port(), free_port()
    fake_log = tmp / "fake.log"
    with fake_log.open("wb") as log:
        fake_proc = procs.add(
            spawn(
                [
                    sys.executable,
                    "-m",
                    "bench.asterisk.fake",
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
    env = server_env(
        {
            "AMI_HOST": HOST,
            "AMI_PORT": str(ami_port),
            "AMI_USERNAME": AMI_USERNAME,
            "AMI_SECRET": AMI_SECRET,
            "GA_API_BASE_URL": sandbox.base_url,
            "GA_API_ID": GA_API_ID,
            "GA_API_SECRET": GA_API_SECRET,
            "GA_API_MAX_RPS": str(GA_API_MAX_RPS),
            "STORE_URL": store_url,
            "STORE_KEY_PREFIX": STORE_KEY_PREFIX,
            "LOG_LEVEL": "WARNING",
        }
    )
    workers = []
    for n in range(args.workers):
        log_path = tmp / f"worker-{n + 1}.log"
        with log_path.open("wb") as log:
            command = [sys.executable, "-m", "adapter", "asterisk"]
            workers.append(Worker(procs.add(spawn(command, env=env, log=log)), log_path))
    rig = Rig(args, tmp, sandbox, control, fake_proc, workers, store_url, redis_proc)
    rig.wait_workers_ready()
    return rig


def sandbox_args(args: argparse.Namespace) -> list[str]:
    return [*SANDBOX_ARGS, "--threads", str(args.sandbox_threads)]


def start_redis(procs: Processes, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A private redis-server on a free loopback port, without persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchError("--store redis needs redis-server (apt-get install redis-server)")
    port = free_port()
    cmd = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"]
    with (tmp / "redis.log").open("wb") as log:
        proc = procs.add(spawn([*cmd, "--dir", str(tmp)], env=server_env({}), log=log))
    url = f"redis://{HOST}:{port}/0"
    deadline = time.monotonic() + 20
    with redis.Redis.from_url(url, socket_connect_timeout=0.5) as client:
        while True:
            try:
                client.ping()
                return proc, url
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    logged = tail(tmp / "redis.log")
                    raise BenchError(f"redis-server did not start:\n{logged}") from None
                time.sleep(0.1)
