"""Processes of a benchmark run: spawning and stopping them, their CPU, gunicorn servers."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

import httpx

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Environment variables passed through to the servers; everything else is set here.
PASS_THROUGH_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")


class BenchError(Exception):
    """The run could not be set up or carried out."""


def die_with_parent() -> None:
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
        preexec_fn=die_with_parent,
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


def server_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: os.environ[k] for k in PASS_THROUGH_ENV if k in os.environ}
    env.update(extra)
    return env


def raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@dataclass
class RedisProcess:
    """A private redis-server of the run."""

    proc: subprocess.Popen[bytes]
    url: str


def start_redis(procs: Processes, tmp: Path) -> RedisProcess:
    """A redis-server on a free port of 127.0.0.1, without persistence; waits for PING."""
    import redis  # only the Redis runs need it

    port = free_port()
    cmd = ["redis-server", "--port", str(port), "--bind", HOST, "--save", ""]
    cmd += ["--appendonly", "no", "--dir", str(tmp)]
    with (tmp / "redis.log").open("wb") as log:
        proc = procs.add(spawn(cmd, env=None, log=log))
    url = f"redis://{HOST}:{port}/0"
    deadline = time.monotonic() + 30
    with redis.Redis.from_url(url, socket_connect_timeout=1) as client:
        while True:
            try:
                client.ping()
                return RedisProcess(proc, url)
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise BenchError("redis-server did not start; see redis.log") from None
                time.sleep(0.1)
