"""The worker's AMI settings: the shipped placeholder secret, TLS options, start-up refusal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from adapter.asterisk import WorkerSettings
from adapter.config import ConfigError
from tests.fake_ami.dialplan import MANAGER_CONF, parse_manager
from tests.tls_certs import make_certificate

BASE = {
    "AMI_HOST": "pbx.example.com",
    "AMI_USERNAME": "genagent-adapter",
    "AMI_SECRET": "a-long-random-secret-0123456789",
    "GA_API_ID": "id",
    "GA_API_SECRET": "secret",
}


def shipped_secret() -> str:
    return parse_manager(MANAGER_CONF.read_text())["genagent-adapter"]["secret"]


def test_the_shipped_placeholder_secret_is_refused() -> None:
    placeholder = shipped_secret()
    with pytest.raises(ConfigError, match="AMI_SECRET is the placeholder") as caught:
        WorkerSettings.from_env({**BASE, "AMI_SECRET": placeholder})
    assert placeholder not in str(caught.value)
    assert WorkerSettings.from_env(BASE).ami.secret.reveal() == BASE["AMI_SECRET"]


def test_the_worker_process_refuses_to_start_with_the_placeholder(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMI_", "GA_"))}
    env.update(BASE, AMI_SECRET=shipped_secret(), STORE_URL=f"sqlite:///{tmp_path / 's.db'}")
    result = subprocess.run(
        [sys.executable, "-m", "adapter", "asterisk"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "AMI_SECRET is the placeholder shipped in asterisk_conf/manager_genagent.conf" in (
        result.stderr
    )


def test_plain_ami_by_default() -> None:
    ami = WorkerSettings.from_env(BASE).ami
    assert (ami.tls, ami.port, ami.tls_verify, ami.tls_ca_file) == (False, 5038, True, None)


def test_tls_moves_the_default_port_to_5039() -> None:
    ami = WorkerSettings.from_env({**BASE, "AMI_TLS": "true"}).ami
    assert (ami.tls, ami.port, ami.tls_verify) == (True, 5039, True)
    ami = WorkerSettings.from_env({**BASE, "AMI_TLS": "true", "AMI_PORT": "6039"}).ami
    assert ami.port == 6039


def test_a_private_ca_and_no_verification(tmp_path: Path) -> None:
    ca = make_certificate(tmp_path).ca
    env = {**BASE, "AMI_TLS": "yes", "AMI_TLS_CA_FILE": str(ca), "AMI_TLS_VERIFY": "false"}
    ami = WorkerSettings.from_env(env).ami
    assert (ami.tls_ca_file, ami.tls_verify) == (str(ca), False)


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"AMI_TLS": "true", "AMI_TLS_CA_FILE": "/no/such/ca.pem"}, "not a readable file"),
        ({"AMI_TLS": "true", "AMI_TLS_CA_FILE": "NOT-PEM"}, "no usable certificate"),
        ({"AMI_TLS_CA_FILE": "/etc/hostname"}, "AMI_TLS is not true"),
        ({"AMI_TLS": "maybe"}, "AMI_TLS must be true or false"),
        ({"AMI_TLS": "true", "AMI_TLS_VERIFY": "sometimes"}, "AMI_TLS_VERIFY must be"),
    ],
)
def test_bad_tls_settings_are_named(tmp_path: Path, extra: dict[str, str], problem: str) -> None:
    if extra.get("AMI_TLS_CA_FILE") == "NOT-PEM":
        garbage = tmp_path / "garbage.pem"
        garbage.write_text("not a certificate\n")
        extra = {**extra, "AMI_TLS_CA_FILE": str(garbage)}
    with pytest.raises(ConfigError, match=problem):
        WorkerSettings.from_env({**BASE, **extra})
