"""Several instances of the web app as a PaaS runs them: the Procfile's web line under
gunicorn, environment variables only, one Redis; and a round-robin "router" in front."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx

from adapter.sandbox import SandboxServer
from tests.conftest import API_ID, API_SECRET
from tests.redis_server import free_port
from tests.test_procfile import procfile_command
from tests.twilio_stack import AGENT, AUTH_TOKEN, RETURN_URL

PUBLIC_URL = "https://adapter.example.com"
PUBLIC_HOST = "adapter.example.com"


class WebInstance:
    """One gunicorn process group serving the app on its own port."""

    def __init__(self, sandbox: SandboxServer, store_url: str, prefix: str, workdir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,  # PYTHONPATH included: the children import this tree
            "PORT": str(self.port),
            "WEB_CONCURRENCY": "2",
            "GA_API_BASE_URL": sandbox.url,
            "GA_API_ID": API_ID,
            "GA_API_SECRET": API_SECRET,
            "GA_API_DEADLINE": "3",
            "GA_API_ATTEMPT_TIMEOUT": "1",
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "AGENT_DESTINATION": AGENT,
            "SYSTEM_RETURN_URL": RETURN_URL,
            "PUBLIC_BASE_URL": PUBLIC_URL,
            "STORE_URL": store_url,
            "STORE_KEY_PREFIX": prefix,
            "LOG_LEVEL": "WARNING",
        }
        self.workdir = workdir
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> WebInstance:
        """Start gunicorn and wait until /healthz answers."""
        self.process = subprocess.Popen(  # the Procfile line is a shell command by design
            procfile_command("web"),
            shell=True,
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn on port {self.port} exited at start-up")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn on port {self.port} did not answer in time")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (master and workers) and reap the master."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=30)


class RoundRobin(httpx.HTTPTransport):
    """A load balancer: requests for PUBLIC_HOST go to each instance in turn; the rest
    (the sandbox's control endpoints) pass through."""

    def __init__(self, instances: list[WebInstance]) -> None:
        super().__init__()
        self._ports = itertools.cycle([instance.port for instance in instances])
        self.served: Counter[int] = Counter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == PUBLIC_HOST:
            port = next(self._ports)
            self.served[port] += 1
            request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=port)
            request.headers["Host"] = f"127.0.0.1:{port}"
            # The app, behind one proxy hop, signs against PUBLIC_BASE_URL anyway.
            request.headers["X-Forwarded-Proto"] = "https"
        return super().handle_request(request)
