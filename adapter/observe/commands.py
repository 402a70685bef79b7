"""The operator's sub-commands: ``web`` (gunicorn as the Procfile runs it) and ``check``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from adapter.config import EnvReader

HOOKS = "adapter.observe.gunicorn_hooks"


def read_port(env: EnvReader, name: str, default: int) -> int:
    """A port from ``name`` (ConfigError naming it if it is not one)."""
    port = env.integer(name, default, minimum=1, maximum=65535)
    env.check()
    return port


def run_web(args: argparse.Namespace) -> int:
    """Check the settings, then become gunicorn with the Procfile's options and our hooks."""
    from adapter.web import WebSettings

    env = EnvReader()
    port = args.port if args.port is not None else read_port(env, "PORT", 8000)
    workers = env.integer("WEB_CONCURRENCY", 2, minimum=1, maximum=64)
    threads = env.integer("WEB_THREADS", 8, minimum=1, maximum=256)
    env.check()
    WebSettings.from_env()  # a bad setting: one message here, not one per worker
    command = [sys.executable, "-m", "gunicorn", "--config", f"python:{HOOKS}"]
    command += ["--worker-class", "gthread", "--workers", str(workers), "--threads", str(threads)]
    command += ["--timeout", "30", "--bind", f"{args.host}:{port}", "adapter.web:create_app()"]
    if args.log_level:
        os.environ["LOG_LEVEL"] = args.log_level
    os.execv(sys.executable, command)  # noqa: S606  # gunicorn takes this process over


def run_check(_args: argparse.Namespace) -> int:
    """Run every check; the exit status."""
    from adapter.observe.check import run_checks

    return run_checks(os.environ, sys.stdout)


def add_commands(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Register ``web`` and ``check`` on the CLI's sub-parsers."""
    web = commands.add_parser(
        "web", help="run the web app locally under gunicorn, as the Procfile does", parents=parents
    )
    web.add_argument("--host", default="127.0.0.1", help="address to listen on")
    web.add_argument("--port", type=int, help="default $PORT or 8000")
    web.set_defaults(run=run_web)
    check = commands.add_parser(
        "check", help="check the settings, the store, the API and Asterisk", parents=parents
    )
    check.set_defaults(run=run_check)
