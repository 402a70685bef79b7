"""Command line: ``genagent-adapter <command>`` or ``python -m adapter <command>``."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

from adapter import __version__
from adapter.config import ConfigError, EnvReader
from adapter.history.cli import add_calls_command
from adapter.observe.commands import add_commands, read_port
from adapter.observe.logging import configure_logging


def _sandbox(args: argparse.Namespace) -> int:
    from adapter.sandbox import SandboxConfig, SandboxServer

    env = EnvReader()
    port = args.port if args.port is not None else read_port(env, "SANDBOX_PORT", 8088)
    config = SandboxConfig(
        expire_seconds=args.expire_seconds,
        pool_size=args.pool_size,
        api_id=args.api_id or env.text("SANDBOX_API_ID"),
        api_secret=args.api_secret or env.text("SANDBOX_API_SECRET"),
    )
    server = SandboxServer(config, host=args.host, port=port, quiet=False)
    print(f"GenerativeAgent sandbox on {server.url} (Ctrl-C to stop)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from adapter.demo.run import run_demo

    # The timelines are the demo's output; log lines only when asked for.
    configure_logging("DEBUG" if args.verbose else "CRITICAL")
    return run_demo(sys.stdout)


def _asterisk(_args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from adapter.asterisk import AsteriskWorker, StartupError, WorkerSettings
    from adapter.observe.settings import ObserveSettings

    settings = WorkerSettings.from_env()
    observe = ObserveSettings.from_env()

    async def serve() -> None:
        worker = AsteriskWorker(settings)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.stop)
        await worker.run()

    with contextlib.ExitStack() as stack:
        if observe.metrics_port is not None and observe.metrics_token is not None:
            from adapter.observe.endpoints import metrics_server

            server = metrics_server(observe.metrics_token, observe.metrics_port)
            stack.enter_context(server)
        try:
            asyncio.run(serve())
        except StartupError as exc:
            print(f"genagent-adapter: {exc}", file=sys.stderr)
            return 3
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one sub-command per job."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log-level",
        default=argparse.SUPPRESS,
        help="DEBUG, INFO, WARNING... (default: $LOG_LEVEL or INFO)",
    )
    parser = argparse.ArgumentParser(
        prog="genagent-adapter",
        description="Hand phone calls to ASAPP GenerativeAgent and route them back.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="play whole calls through the adapter against the sandbox (no credentials)",
        parents=[common],
    )
    demo.add_argument("--verbose", action="store_true", help="also print the log lines")
    demo.set_defaults(run=_demo)

    asterisk = commands.add_parser(
        "asterisk",
        help="run the AMI worker for Asterisk (settings from AMI_* and GA_API_*)",
        parents=[common],
    )
    asterisk.set_defaults(run=_asterisk)
    add_commands(commands, parents=[common])

    sandbox = commands.add_parser(
        "sandbox",
        help="run a local emulator of the GenerativeAgent call-transfers API",
        parents=[common],
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sandbox.add_argument("--port", type=int, help="default $SANDBOX_PORT or 8088")
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
    add_calls_command(commands, parents=[common])
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
    args.log_level = getattr(args, "log_level", None)
    try:
        if args.command == "check":  # its lines are the output; it checks LOG_* itself
            configure_logging(args.log_level or "CRITICAL", env={})
        else:
            configure_logging(args.log_level)
        code: int = args.run(args)
    except (ConfigError, ValueError) as exc:  # bad settings: a clear message, no traceback
        print(f"genagent-adapter: {exc}", file=sys.stderr)
        return 2
    return code
