"""What /proc says about the benchmark's processes and the machine, stalls included."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.asterisk.config import STALL_DRAIN, STALL_MS


@dataclass(frozen=True)
class ProcStatus:
    """What /proc says about a worker: resident memory, threads, open files."""

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

    @classmethod
    def total(cls, pids: Sequence[int]) -> ProcStatus:
        """The sum over several processes (the workers of a shared run)."""
        each = [cls.read(pid) for pid in pids]
        return cls(
            rss_kb=sum(s.rss_kb for s in each),
            threads=sum(s.threads for s in each),
            fds=sum(s.fds for s in each),
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
