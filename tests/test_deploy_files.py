"""The files a PaaS or a container platform deploys from: app.json, requirements.txt,
.python-version, the Dockerfile and its entry point."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from adapter.asterisk.settings import WorkerSettings
from adapter.config import ConfigError
from adapter.web import WebSettings
from tests.redis_server import free_port

ROOT = Path(__file__).resolve().parent.parent
# Read by the Procfile's shell line and by the logging set-up, not by a settings reader.
PROCESS_VARIABLES = {"WEB_CONCURRENCY", "WEB_THREADS", "LOG_LEVEL"}
# Set by the Redis add-on (attached "as" REDIS), not by the operator.
ADDON_VARIABLES = {"REDIS_URL"}
REQUIRED_BY_THE_WEB_APP = {"GA_API_ID", "GA_API_SECRET", "TWILIO_AUTH_TOKEN", "AGENT_DESTINATION"}


class RecordingEnv(dict[str, str]):
    """An empty environment that notes every variable a settings reader asks for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)


def variables_read_by(reader: Any) -> tuple[set[str], list[str]]:
    env = RecordingEnv()
    try:
        reader(env)
    except ConfigError as exc:
        return env.asked, exc.problems
    return env.asked, []


@pytest.fixture(scope="module")
def app_json() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((ROOT / "app.json").read_text())
    return document


def test_app_json_declares_every_setting_and_nothing_else(app_json: dict[str, Any]):
    web, _ = variables_read_by(WebSettings.from_env)
    worker, _ = variables_read_by(WorkerSettings.from_env)
    assert set(app_json["env"]) == (web | worker | PROCESS_VARIABLES) - ADDON_VARIABLES
    for name, spec in app_json["env"].items():
        assert spec["description"].strip(), name


def test_app_json_requires_what_the_web_app_cannot_start_without(app_json: dict[str, Any]):
    _, problems = variables_read_by(WebSettings.from_env)
    missing = {name for name in app_json["env"] if any(name in p for p in problems)}
    assert missing == REQUIRED_BY_THE_WEB_APP
    required = {name for name, spec in app_json["env"].items() if spec.get("required")}
    assert required == REQUIRED_BY_THE_WEB_APP


def test_app_json_formation_is_the_procfile_with_redis(app_json: dict[str, Any]):
    procfile = {
        line.partition(":")[0] for line in (ROOT / "Procfile").read_text().splitlines() if line
    }
    assert set(app_json["formation"]) == procfile == {"web", "worker"}
    [redis] = app_json["addons"]
    assert redis["plan"].startswith("heroku-redis:")
    assert {f"{redis['as']}_URL"} == ADDON_VARIABLES
    assert "STORE_URL" not in {k for k, v in app_json["env"].items() if "value" in v}


def test_requirements_pin_every_dependency_within_pyproject():
    lines = [
        line
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[-1] == "."  # the project itself
    pins = {}
    for line in lines[:-1]:
        name, version = re.fullmatch(r"([a-z0-9-]+)==(\S+)", line).groups()  # type: ignore[union-attr]
        pins[name] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for text in project["dependencies"]:
        requirement = Requirement(text)
        assert requirement.specifier.contains(pins[canonicalize_name(requirement.name)])


def test_python_version_and_image_agree_with_pyproject():
    assert (ROOT / ".python-version").read_text().strip() == "3.11"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.MULTILINE)
    assert 'ENTRYPOINT ["bin/procfile"]' in dockerfile
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"


def test_the_image_entry_point_refuses_an_unknown_process_type():
    result = subprocess.run(
        [str(ROOT / "bin" / "procfile"), "release"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 64
    assert "no 'release' line in the Procfile" in result.stderr


@pytest.fixture
def entry_point_web(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "GA_API_ID": "id",
        "GA_API_SECRET": "secret",
        "TWILIO_AUTH_TOKEN": "token",
        "AGENT_DESTINATION": "+15550100",
        "STORE_URL": f"sqlite:///{tmp_path / 'calls.sqlite3'}",
    }
    process = subprocess.Popen(
        [str(ROOT / "bin" / "procfile"), "web"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()  # the shell exec'd gunicorn: the master gets the signal
        process.wait(timeout=30)


def test_the_image_entry_point_serves_the_web_line(entry_point_web: str):
    deadline = time.monotonic() + 60
    while True:
        try:
            answer = httpx.get(f"{entry_point_web}/healthz", timeout=1)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.1)
    assert answer.json() == {"status": "ok"}
