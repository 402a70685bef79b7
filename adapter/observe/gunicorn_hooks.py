"""gunicorn settings and hooks: logging in every process, metrics across workers.

``./gunicorn.conf.py`` (read by gunicorn from the working directory, so the Procfile's
web line picks it up) re-exports this module; ``genagent-adapter web`` passes it with
``--config python:adapter.observe.gunicorn_hooks``.

Metrics: prometheus_client's multiprocess mode needs one directory shared by the
workers of one master. When PROMETHEUS_MULTIPROC_DIR is unset, the master picks
``<tmp>/genagent-metrics-<master pid>``; either way it is emptied when the master
starts (counters of a previous run must not leak in), and a dead worker's live gauges
are dropped by ``child_exit``.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from typing import Any

from gunicorn.glogging import Logger

from adapter.observe.logging import LoggingSettings, logging_dict

__all__ = [
    "accesslog",
    "child_exit",
    "logconfig_dict",
    "logger_class",
    "on_exit",
    "on_starting",
]

try:
    _logging = LoggingSettings.from_env()
except ValueError as bad:  # one clear line, not a traceback from gunicorn's config loader
    sys.stderr.write(f"genagent-adapter: {bad}\n")
    raise SystemExit(2) from None


class NoAccessLogger(Logger):  # type: ignore[misc]  # gunicorn has no type hints
    """gunicorn's logger without an access log, not even a discarded one.

    With ``logconfig_dict`` set gunicorn counts the access log as enabled, so it would
    build every request's log atoms (tens of microseconds) for a logger that drops them;
    the access log stays off anyway: query strings hold caller variables.
    """

    @property
    def access_log_enabled(self) -> bool:
        return False

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        return None


# Not a typo: gunicorn reads these module-level names as its settings.
logconfig_dict = logging_dict(_logging)
accesslog = None
logger_class = NoAccessLogger
logging.captureWarnings(True)  # in the master; the workers inherit it


_chosen_dir: str | None = None  # the directory this master made up, removed on exit


def prepare_metrics_dir() -> str:
    """Set PROMETHEUS_MULTIPROC_DIR (if unset) for this master, and empty it."""
    global _chosen_dir
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        path = _chosen_dir = os.path.join(tempfile.gettempdir(), f"genagent-metrics-{os.getpid()}")
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    return path


def on_starting(server: Any) -> None:
    """In the master, before any worker is forked."""
    prepare_metrics_dir()


def on_exit(server: Any) -> None:
    """In the master, when it stops: remove a directory it made up."""
    if _chosen_dir:
        shutil.rmtree(_chosen_dir, ignore_errors=True)


def child_exit(server: Any, worker: Any) -> None:
    """In the master, when a worker has exited."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
