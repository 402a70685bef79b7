"""py-spy's view of a worker during one extra, unmeasured wave."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections import Counter

from bench.asterisk.config import ENTRY_FILES, LIBRARY_ENTRIES, PROFILE_RATE, WAITING_FRAMES
from bench.asterisk.control import tail
from bench.asterisk.rig import Rig
from bench.asterisk.waves import print_wave
from bench.voice_webhook.processes import spawn, stop


def profile_wave(rig: Rig, number: int) -> str:
    """One more wave with py-spy sampling the (first) worker; where its time goes."""
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        return "not profiled: py-spy is not installed (`pip install py-spy`)"
    out = rig.tmp / "worker-profile.txt"
    cmd = [py_spy, "record", "--pid", str(rig.worker_pids[0]), "--rate", str(PROFILE_RATE)]
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
