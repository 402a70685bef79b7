"""The command line, run as a user runs it: a real process on a real port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import AUTH


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_listening(url: str, process: subprocess.Popen[str]) -> None:
    for _ in range(100):
        if process.poll() is not None:
            pytest.fail(f"sandbox exited early: {process.stdout.read() if process.stdout else ''}")
        try:
            httpx.get(f"{url}/healthz", timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail("sandbox did not start listening")


def test_python_m_adapter_sandbox_serves_a_create_get_round_trip() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "adapter",
            "sandbox",
            "--port",
            str(port),
            "--api-id",
            AUTH["asapp-api-id"],
            "--api-secret",
            AUTH["asapp-api-secret"],
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until_listening(url, process)
        body = {
            "id": "cli-1",
            "externalConversationId": "cli-conv",
            "type": "PHONE_NUMBER",
            "phoneNumber": {"country": "US"},
        }
        created = httpx.post(f"{url}/generativeagent/v1/call-transfers", json=body, headers=AUTH)
        assert created.status_code == 200
        got = httpx.get(f"{url}/generativeagent/v1/call-transfers/cli-1", headers=AUTH)
        assert (
            got.json()["phoneNumber"]["transferNumber"]
            == created.json()["phoneNumber"]["transferNumber"]
        )
        denied = httpx.get(f"{url}/generativeagent/v1/call-transfers/cli-1")
        assert denied.status_code == 401
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert f"GenerativeAgent sandbox on {url}" in output


def test_bad_arguments_are_one_clear_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "adapter", "sandbox", "--pool-size", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "pool_size must be between" in result.stderr
    assert "Traceback" not in result.stderr


def test_console_script_help_lists_the_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "adapter", "--help"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0
    assert "sandbox" in result.stdout


def test_demo_plays_every_call_and_exits_zero() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "adapter", "demo"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "12 of 12 calls ended as expected." in result.stdout
    for how in ("BYE", "REFER", "INVITE"):
        assert f"by {how}\n" in result.stdout
    assert "Dial[Sip] with action and referUrl" in result.stdout
    assert "handoff: hand-off 2, resuming the conversation" in result.stdout
    assert "holding" in result.stdout
    assert result.stderr == ""  # the timelines only: no log lines, no HTTP client lines
    assert "HTTP Request" not in result.stdout
    for outcome in ("agent-returned", "caller-hung-up", "fallback"):
        assert f"call outcome {outcome}" in result.stdout
