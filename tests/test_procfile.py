"""The Procfile's web line, run as a PaaS runs it: gunicorn, environment variables only."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from twilio.request_validator import RequestValidator

from adapter.sandbox import SandboxServer
from adapter.twilio.sids import new_call_sid
from adapter.twilio.views import MAX_BODY_BYTES
from tests.chunked import post_chunked
from tests.conftest import API_ID, API_SECRET
from tests.test_cli import free_port
from tests.twilio_stack import AUTH_TOKEN, call_params

ROOT = Path(__file__).resolve().parent.parent


def procfile_command(process: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process:
            return command.strip()
    pytest.fail(f"no {process!r} line in the Procfile")


def test_web_line_serves_signed_webhooks(sandbox: SandboxServer, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "GA_API_BASE_URL": sandbox.url,
        "GA_API_ID": API_ID,
        "GA_API_SECRET": API_SECRET,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "AGENT_DESTINATION": "+15550100",
        "STORE_URL": f"sqlite:///{tmp_path / 'web.sqlite3'}",
        "PUBLIC_BASE_URL": "https://adapter.example.com",
    }
    server = subprocess.Popen(  # the Procfile line is a shell command by design
        procfile_command("web"),
        shell=True,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(150):
            if server.poll() is not None:
                pytest.fail(server.stdout.read() if server.stdout else "gunicorn exited")
            try:
                if httpx.get(f"{base}/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        params = call_params(new_call_sid())
        signature = RequestValidator(AUTH_TOKEN).compute_signature(
            "https://adapter.example.com/twilio/voice", params
        )
        response = httpx.post(
            f"{base}/twilio/voice", data=params, headers={"X-Twilio-Signature": signature}
        )
        assert response.status_code == 200
        document = ET.fromstring(response.content)
        assert (document.findtext("Dial/Number") or "").startswith("+1999555")
        unsigned = httpx.post(f"{base}/twilio/voice", data=params)
        assert unsigned.status_code == 403
        # A chunked body (no Content-Length) over the cap is refused before it is parsed.
        huge = urlencode(call_params(new_call_sid(), Padding="x" * 2 * MAX_BODY_BYTES)).encode()
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        assert post_chunked(f"{base}/twilio/voice", form, huge) == 413
        assert post_chunked(f"{base}/twilio/voice", form, urlencode(params).encode()) == 403
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_web_line_refuses_to_boot_without_settings(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GA_", "TWILIO_", "AGENT_"))}
    env["PORT"] = str(free_port())
    result = subprocess.run(
        procfile_command("web"),
        shell=True,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    for name in ("GA_API_ID", "GA_API_SECRET", "TWILIO_AUTH_TOKEN", "AGENT_DESTINATION"):
        assert name in output
