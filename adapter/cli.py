"""Command line: ``genagent-adapter <command>`` or ``python -m adapter <command>``."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

from adapter import __version__
from adapter.config import ConfigError, EnvReader
from adapter.history.cli import add_calls_command
from adapter.logs import configure_logging


def _sandbox(args: argparse.Namespace) -> int:
    from adapter.sandbox import SandboxConfig, SandboxServer

    env = EnvReader()
    config = SandboxConfig(
        expire_seconds=args.expire_seconds,
        pool_size=args.pool_size,
        api_id=args.api_id or env.text("SANDBOX_API_ID"),
        api_secret=args.api_secret or env.text("SANDBOX_API_SECRET"),
    )
    server = SandboxServer(config, host=args.host, port=args.port, quiet=False)
    print(f"GenerativeAgent sandbox on {server.url} (Ctrl-C to stop)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


def _demo(_args: argparse.Namespace) -> int:
    from adapter.demo.run import run_demo

    return run_demo(sys.stdout)


def _asterisk(_args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from adapter.asterisk import AsteriskWorker, StartupError, WorkerSettings

    settings = WorkerSettings.from_env()

    async def serve() -> None:
        worker = AsteriskWorker(settings)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.stop)
        await worker.run()

    try:
        asyncio.run(serve())
    except StartupError as exc:
        print(f"genagent-adapter: {exc}", file=sys.stderr)
        return 3
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one sub-command per job."""
    parser = argparse.ArgumentParser(
        prog="genagent-adapter",
        description="Hand phone calls to ASAPP GenerativeAgent and route them back.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING... (default: $LOG_LEVEL or INFO)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="play whole calls through the adapter against the sandbox (no credentials)"
    )
    demo.set_defaults(run=_demo)

    asterisk = commands.add_parser(
        "asterisk", help="run the AMI worker for Asterisk (settings from AMI_* and GA_API_*)"
    )
    asterisk.set_defaults(run=_asterisk)

    sandbox = commands.add_parser(
        "sandbox", help="run a local emulator of the GenerativeAgent call-transfers API"
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sandbox.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT", "8088")),
        help="default $PORT or 8088",
    )
    sandbox.add_argument(
        "--expire-seconds",
        type=_positive_float,
        default=60.0,
        help="how long a transfer number stays valid (default 60)",
    )
    sandbox.add_argument(
        "--pool-size", type=int, default=100, help="how many transfer numbers it hands out"
    )
    sandbox.add_argument("--api-id", help="accept only this asapp-api-id ($SANDBOX_API_ID)")
    sandbox.add_argument(
        "--api-secret", help="accept only this asapp-api-secret ($SANDBOX_API_SECRET)"
    )
    sandbox.set_defaults(run=_sandbox)
    add_calls_command(commands)
    return parser


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen command; returns the exit status."""
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        code: int = args.run(args)
    except (ConfigError, ValueError) as exc:  # bad settings: a clear message, no traceback
        print(f"genagent-adapter: {exc}", file=sys.stderr)
        return 2
    return code
