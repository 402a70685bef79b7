"""The Procfile's web line as a PaaS runs it: a real gunicorn, environment variables only.

Run from the project root, so gunicorn reads ``gunicorn.conf.py`` as it does when
deployed. Its output goes to a file the test reads while it runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import API_ID, API_SECRET
from tests.test_cli import free_port
from tests.test_procfile import ROOT, procfile_command
from tests.twilio_stack import AUTH_TOKEN

METRICS_TOKEN = "metrics-token-0123456789abcdef"
AGENT_NUMBER = "+15550100"


def web_env(sandbox_url: str, tmp_path: Path, **overrides: str) -> dict[str, str]:
    """Every variable the web line needs, for ``sandbox_url``; ``overrides`` win."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GA_", "PROMETHEUS_"))}
    env.update(
        {
            "PORT": str(free_port()),
            "WEB_CONCURRENCY": "2",
            "WEB_THREADS": "4",
            "GA_API_BASE_URL": sandbox_url,
            "GA_API_ID": API_ID,
            "GA_API_SECRET": API_SECRET,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "AGENT_DESTINATION": AGENT_NUMBER,
            "STORE_URL": f"sqlite:///{tmp_path / 'web.sqlite3'}",
            "METRICS_TOKEN": METRICS_TOKEN,
            "LOG_FORMAT": "json",
            "TRANSFER_CREATE_DEADLINE": "2",
            "CONTEXT_WAIT_SECONDS": "1",
            "CONTEXT_POLL_INTERVAL": "0.1",
        }
    )
    env.update(overrides)
    return env


@dataclass
class WebProcess:
    """A running web line: its URL and everything it has logged so far."""

    url: str
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def json_lines(self) -> list[dict[str, Any]]:
        """Every log line, each parsed as JSON (failing the test if one is not)."""
        lines = []
        for line in self.log_text().splitlines():
            if line.strip():
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    pytest.fail(f"a log line is not JSON: {line!r}")
        return lines

    def wait_for_line(self, predicate: Any, timeout: float = 30.0) -> dict[str, Any]:
        """The first JSON log line ``predicate`` accepts (lines are flushed as written)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.json_lines():
                if predicate(line):
                    return line
            time.sleep(0.1)
        pytest.fail(f"no such log line in:\n{self.log_text()}")


@contextmanager
def procfile_web(env: dict[str, str], tmp_path: Path) -> Iterator[WebProcess]:
    """Run the web line with ``env`` until the block ends."""
    log_path = tmp_path / f"web-{env['PORT']}.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(  # the Procfile line is a shell command by design
            procfile_command("web"),
            shell=True,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    web = WebProcess(f"http://127.0.0.1:{env['PORT']}", log_path)
    try:
        for _ in range(300):
            if server.poll() is not None:
                pytest.fail(f"gunicorn exited:\n{web.log_text()}")
            try:
                if httpx.get(f"{web.url}/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail(f"gunicorn did not answer:\n{web.log_text()}")
        yield web
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
