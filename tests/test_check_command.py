"""`genagent-adapter check`, run as a release phase runs it: a process, the environment only.

Against the real sandbox (right and wrong secrets) and the fake AMI server over TCP
(the shipped dialplan, or one missing the route contexts).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from adapter.sandbox import SandboxServer
from tests.conftest import API_ID, API_SECRET
from tests.fake_ami.dialplan import CORE_CONF, Dialplan
from tests.fake_ami.harness import async_test
from tests.fake_ami.pbx import TEST_IVR_CONF
from tests.fake_ami.server import FakeAsterisk
from tests.twilio_stack import AUTH_TOKEN


def check_env(sandbox_url: str, tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GA_", "AMI_", "TWILIO_", "AGENT_", "LOG_", "METRICS_"))
    }
    env.update(
        {
            "GA_API_BASE_URL": sandbox_url,
            "GA_API_ID": API_ID,
            "GA_API_SECRET": API_SECRET,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "AGENT_DESTINATION": "+15550100",
            "STORE_URL": f"sqlite:///{tmp_path / 'check.sqlite3'}",
        }
    )
    env.update(overrides)
    return env


async def run_check(env: dict[str, str]) -> tuple[int, str]:
    """Run the command without blocking the loop (the fake AMI runs on it)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "adapter",
        "check",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, output.decode()


def lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


def test_everything_right_without_asterisk(sandbox: SandboxServer, tmp_path: Path) -> None:
    code, output = asyncio.run(run_check(check_env(sandbox.url, tmp_path)))
    assert code == 0, output
    assert "PASS  GenerativeAgent API: credentials accepted" in output
    assert "PASS  call store: store answers" in output
    assert "SKIP  Asterisk: AMI_HOST is not set: Asterisk checks skipped" in output
    assert all(line.split()[0] in ("PASS", "SKIP") for line in lines(output))


def test_a_wrong_secret_fails_naming_the_status(sandbox: SandboxServer, tmp_path: Path) -> None:
    env = check_env(sandbox.url, tmp_path, GA_API_SECRET="not-the-secret-at-all")
    code, output = asyncio.run(run_check(env))
    assert code == 1
    assert "FAIL  GenerativeAgent API: credentials rejected (401)" in output
    assert "not-the-secret-at-all" not in output


def test_an_unreachable_api_fails(tmp_path: Path) -> None:
    env = check_env("http://127.0.0.1:9", tmp_path, GA_API_DEADLINE="1")
    code, output = asyncio.run(run_check(env))
    assert code == 1
    assert "FAIL  GenerativeAgent API: no verdict: connection-error" in output


def test_bad_settings_fail_with_status_2_naming_each(tmp_path: Path) -> None:
    env = check_env("not a url", tmp_path, LOG_FORMAT="xml", DIAL_TIMEOUT="abc")
    del env["TWILIO_AUTH_TOKEN"]
    code, output = asyncio.run(run_check(env))
    assert code == 2
    assert "FAIL  logging settings: LOG_FORMAT must be text or json" in output
    web = next(line for line in lines(output) if line.startswith("FAIL  Twilio web app settings"))
    for name in ("GA_API_BASE_URL", "DIAL_TIMEOUT", "TWILIO_AUTH_TOKEN"):
        assert name in web
    assert "Traceback" not in output


@async_test
async def test_asterisk_login_and_dialplan_pass(sandbox: SandboxServer, tmp_path: Path) -> None:
    async with FakeAsterisk() as fake:
        env = check_env(
            sandbox.url,
            tmp_path,
            AMI_HOST="127.0.0.1",
            AMI_PORT=str(fake.port),
            AMI_USERNAME="genagent-adapter",
            AMI_SECRET="worker-secret",
        )
        code, output = await run_check(env)
    assert code == 0, output
    assert "PASS  Asterisk manager interface: logged in to 127.0.0.1" in output
    assert "PASS  Asterisk dialplan: 5 contexts present" in output
    assert "worker-secret" not in output


@async_test
async def test_asterisk_missing_contexts_and_wrong_secret(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    core_only = Dialplan.load([CORE_CONF], TEST_IVR_CONF)
    async with FakeAsterisk(dialplan=core_only) as fake:
        env = check_env(
            sandbox.url,
            tmp_path,
            AMI_HOST="127.0.0.1",
            AMI_PORT=str(fake.port),
            AMI_USERNAME="genagent-adapter",
            AMI_SECRET="worker-secret",
        )
        code, output = await run_check(env)
        assert code == 1
        dialplan = next(line for line in lines(output) if "Asterisk dialplan" in line)
        assert dialplan.startswith("FAIL  Asterisk dialplan: no extension s in genagent-agent")
        assert "genagent-fallback" in dialplan
        assert "genagent-dial" not in dialplan

        code, output = await run_check({**env, "AMI_SECRET": "wrong-ami-secret"})
    assert code == 1
    assert "FAIL  Asterisk manager interface: AMI login as 'genagent-adapter' refused" in output
    assert "wrong-ami-secret" not in output
