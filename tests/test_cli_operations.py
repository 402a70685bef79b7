"""The operator's commands: `web`, bad settings, --log-level placement, the sandbox's port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from adapter.sandbox import SandboxServer
from tests.gunicorn_rig import METRICS_TOKEN, web_env
from tests.test_cli import free_port, wait_until_listening


def adapter_command(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adapter", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "variable", "value"),
    [
        (("web",), "PORT", "abc"),
        (("web",), "WEB_CONCURRENCY", "0"),
        (("sandbox",), "SANDBOX_PORT", "99999"),
        (("check",), "LOG_LEVEL", "LOUD"),
        (("asterisk",), "LOG_FORMAT", "xml"),
        (("demo",), "LOG_LEVEL", "LOUD"),
    ],
)
def test_a_bad_setting_is_one_message_and_status_2(
    args: tuple[str, ...], variable: str, value: str
) -> None:
    env = {**os.environ, variable: value}
    result = adapter_command(*args, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert variable in output
    assert "Traceback" not in output


def test_log_level_works_after_the_sub_command(sandbox: SandboxServer, tmp_path: Path) -> None:
    env = web_env(sandbox.url, tmp_path)
    quiet = adapter_command("check", env=env)
    loud = adapter_command("check", "--log-level", "DEBUG", env=env)
    assert quiet.returncode == loud.returncode == 0, loud.stdout + loud.stderr
    assert "DEBUG adapter.genagent" not in quiet.stderr
    assert "DEBUG adapter.genagent" in loud.stderr
    assert adapter_command("--log-level", "DEBUG", "check", env=env).returncode == 0
    assert adapter_command("check", "--log-level", "LOUD", env=env).returncode == 2


def test_the_sandbox_ignores_port_and_reads_sandbox_port() -> None:
    port, other = free_port(), free_port()
    env = {**os.environ, "PORT": str(other), "SANDBOX_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "adapter", "sandbox"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until_listening(f"http://127.0.0.1:{port}", process)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{other}/healthz", timeout=1)
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_web_runs_the_app_under_gunicorn_on_port(sandbox: SandboxServer, tmp_path: Path) -> None:
    env = web_env(sandbox.url, tmp_path, LOG_FORMAT="text")
    url = f"http://127.0.0.1:{env['PORT']}"
    process = subprocess.Popen(
        [sys.executable, "-m", "adapter", "web"],
        env=env,
        cwd=tmp_path,  # no gunicorn.conf.py here: the command brings its own hooks
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        for _ in range(300):
            if process.poll() is not None:
                pytest.fail(process.stdout.read() if process.stdout else "web exited")
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("web never became ready")
        metrics = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert metrics.status_code == 200
        assert "genagent_handoffs_total" in metrics.text
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert "Booting worker" in output
    assert " INFO gunicorn.error: " in output  # gunicorn's own log, in the adapter's format
