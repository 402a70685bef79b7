"""The command line: start the sandbox, the apps and the store, alternate the phases."""

from __future__ import annotations

import argparse
import secrets
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from adapter.store import StoreOptions
from bench.voice_webhook.dial_results import DialResultPrep
from bench.voice_webhook.load import POOL_SIZE, Bench, Phase
from bench.voice_webhook.processes import (
    REPO,
    BenchError,
    Processes,
    raise_interrupt,
    server_env,
    start_gunicorn,
    start_redis,
    wait_ready,
)
from bench.voice_webhook.report import judge, report
from bench.voice_webhook.stores import fsync_probe, inspect_redis, inspect_store, redis_commands
from bench.voice_webhook.webhooks import AUTH_TOKEN

RESULTS_FILES = {
    ("voice", "sqlite"): REPO / "bench" / "results" / "twilio_webhook.md",
    ("voice", "redis"): REPO / "bench" / "results" / "twilio_webhook_redis.md",
    ("dial-result", "sqlite"): REPO / "bench" / "results" / "twilio_dial_result.md",
    ("dial-result", "redis"): REPO / "bench" / "results" / "twilio_dial_result_redis.md",
}
GA_API_ID = "bench-api-id"
GA_API_SECRET = "bench-api-secret"
AGENT_DESTINATION = "+15550100"


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
    add(
        "--store",
        choices=("sqlite", "redis"),
        default="sqlite",
        help="the adapter's store: SQLite in a temporary file, or a private redis-server (sqlite)",
    )
    add(
        "--path",
        choices=("voice", "dial-result"),
        default="voice",
        help="the webhook loaded: the hand-off (voice), or the <Dial> action after"
        " GenerativeAgent hung up with an AGENT context (dial-result) (voice)",
    )
    add("--results", type=Path, help="where to write the Markdown (bench/results/...)")
    add("--keep", action="store_true", help="keep the temporary directory (logs, store)")
    args = parser.parse_args(argv)
    if min(args.duration, args.rounds, args.connections, args.wrk_threads) < 1:
        parser.error("--duration, --rounds, --connections and --wrk-threads must be >= 1")
    if args.connections < args.wrk_threads:
        parser.error("--connections must be at least --wrk-threads")
    if args.expire_seconds <= 10:
        # The adapter's policy: 5 s of margin plus 5 s of ringing at least, or a new transfer.
        parser.error("--expire-seconds must be above 10, or the adapter never dials")
    args.results = args.results or RESULTS_FILES[args.path, args.store]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed: sudo apt-get install -y wrk", file=sys.stderr)
        return 2
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, raise_interrupt)
    tmp = Path(tempfile.mkdtemp(prefix="genagent-bench-"))
    procs = Processes()
    store_path = tmp / "calls.sqlite3"
    store_env = {"STORE_URL": f"sqlite:///{store_path}"}
    redis_prefix = f"bench-{secrets.token_hex(4)}:"
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
        store_server = None
        if args.store == "redis":
            store_server = start_redis(procs, tmp)
            store_env = {"STORE_URL": store_server.url, "STORE_KEY_PREFIX": redis_prefix}
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
            "AGENT_DESTINATION": AGENT_DESTINATION,
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
                        **store_env,
                        "PROXY_HOPS": "0",
                        "LOG_LEVEL": "WARNING",
                    }
                ),
                tmp,
            ),
        }
        for server in (sandbox, *apps.values()):
            wait_ready(server)
        bench = Bench(args, tmp, sandbox, apps, agent_destination=AGENT_DESTINATION)
        if args.path == "dial-result":
            options = StoreOptions(key_prefix=store_env.get("STORE_KEY_PREFIX", "genagent:"))
            bench.dial_results = DialResultPrep(
                bench.http, sandbox.base_url, store_env["STORE_URL"], options
            )
        if store_server is not None:
            bench.store_pids = [store_server.proc.pid]
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
            # ABBA: the machine's drift over a run weighs on both apps alike.
            order = ("baseline", "adapter") if round_no % 2 else ("adapter", "baseline")
            for name in order:
                phases.append(bench.run_phase(str(round_no), name, args.duration))
        adapter_history = [p for p in bench.history if p.server == "adapter"]
        if store_server is None:
            store = inspect_store(store_path)
            if args.fsync_probe > 0:
                store.fsync_note = fsync_probe(bench, args.fsync_probe)
        else:
            answered = sum(p.wrk.requests for p in adapter_history)
            commands = redis_commands(store_server.url)
            store = inspect_redis(store_server.url, redis_prefix, commands, answered)
            store.fsync_note = "not run (Redis without persistence writes no file)"
        store.adapter_transfers = sum(p.transfers for p in adapter_history)
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
