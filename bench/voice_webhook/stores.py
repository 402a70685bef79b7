"""What the adapter's store did during the run: read back from SQLite or Redis."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from bench.voice_webhook.load import Bench
from bench.voice_webhook.processes import spawn, stop


@dataclass
class StoreReport:
    """What the store held at the end, and how it was set up, in one sentence."""

    kind: str  # the words the report uses: "SQLite store in a fresh temporary file"
    settings: str
    records: int
    dialed_records: int
    adapter_transfers: int = 0  # transfers the sandbox created while the adapter was loaded
    fsync_note: str = "not measured"

    def summary(self) -> str:
        return (
            f"Adapter store: {self.settings}; {self.records} call records "
            f"({self.dialed_records} answered with a Dial; the sandbox had created "
            f"{self.adapter_transfers} adapter transfers when the phases ended, requests then "
            f"in flight add a few). fsync probe: {self.fsync_note}."
        )


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
        (sync_level,) = store._run(lambda conn: conn.execute("PRAGMA synchronous").fetchone())
        (autocheckpoint,) = store._run(
            lambda conn: conn.execute("PRAGMA wal_autocheckpoint").fetchone()
        )
    finally:
        store.close()
    synchronous = f"{SYNCHRONOUS_NAMES.get(int(sync_level), '?')} ({sync_level})"
    return StoreReport(
        kind="SQLite store in a fresh temporary file",
        settings=(
            f"read back from the file, journal_mode={journal_mode} (header bytes 18-19 say "
            f"WAL: {'yes' if header_wal else 'NO'}), synchronous={synchronous} on a connection "
            f"opened by the adapter's store, wal_autocheckpoint={autocheckpoint} pages"
        ),
        records=int(records),
        dialed_records=int(dialed or 0),
    )


def redis_commands(url: str) -> int:
    """Commands the Redis server has processed since it started."""
    with redis.Redis.from_url(url) as client:
        return int(client.info("stats")["total_commands_processed"])


def inspect_redis(url: str, prefix: str, commands: int, answered: int) -> StoreReport:
    """Count the adapter's records in Redis; ``commands`` were processed for ``answered``
    adapter webhooks (warm-ups included)."""
    records = dialed = 0
    with redis.Redis.from_url(url, decode_responses=True) as client:
        version = client.info("server")["redis_version"]
        memory = client.info("memory")["used_memory_human"]
        for key in client.scan_iter(f"{prefix}call:*", count=1000):
            records += 1
            data = json.loads(client.hget(key, "d") or "{}")
            dialed += data.get("steps", {}).get("start", {}).get("step") == "dial"
    return StoreReport(
        kind="Redis store (a private redis-server on 127.0.0.1, no persistence)",
        settings=(
            f"redis-server {version}, `--save '' --appendonly no`, {memory} used at the end; "
            f"{commands} commands (those run inside Lua scripts included) for {answered} adapter "
            f"webhooks answered "
            f"({commands / max(1, answered):.1f} per webhook, rate-limit window included)"
        ),
        records=records,
        dialed_records=dialed,
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
