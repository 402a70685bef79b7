"""AMI over TLS for real: a throwaway CA, the fake AMI server behind TLS, the real worker."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from adapter.asterisk import AsteriskWorker
from adapter.sandbox import SandboxServer
from tests.asterisk_rig import Rig, agent_call, running_rig
from tests.fake_ami.pbx import wait_until
from tests.tls_certs import ServerCertificate, make_certificate

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> ServerCertificate:
    return make_certificate(tmp_path_factory.mktemp("ami-tls"))


@pytest.fixture(scope="module")
def misnamed(tmp_path_factory: pytest.TempPathFactory) -> ServerCertificate:
    """Signed by its CA, but for another host than the one the worker dials."""
    return make_certificate(tmp_path_factory.mktemp("ami-tls-other"), "DNS:asterisk.example.com")


def run(test: object) -> None:
    asyncio.run(asyncio.wait_for(test, 60))  # type: ignore[arg-type]


async def refused(rig: Rig, caplog: pytest.LogCaptureFixture, why: str) -> None:
    """The worker keeps trying, each attempt failing the handshake; it never logs in."""
    worker: AsteriskWorker = rig.worker
    running = asyncio.ensure_future(worker.run())

    def failures() -> int | None:
        found = [r for r in caplog.records if why in r.getMessage()]
        return len(found) if len(found) >= 2 else None

    try:
        await wait_until(failures, 20, f"two attempts failing with {why!r}")
        assert not worker.ready.is_set()
        assert rig.fake.actions_named("Login") == []
        assert rig.fake.connections == 0  # no handshake completed
    finally:
        worker.stop()
        await asyncio.wait_for(running, 10)


def test_tls_verified_with_the_private_ca(
    sandbox: SandboxServer, tmp_path: Path, certificate: ServerCertificate
) -> None:
    async def body() -> None:
        ami = {"tls": True, "tls_ca_file": str(certificate.ca)}
        tls = certificate.server_context()
        async with running_rig(sandbox, tmp_path, ami=ami, tls=tls) as rig:
            await agent_call(rig)
            assert len(rig.fake.actions_named("Login")) == 1

    run(body())


def test_tls_without_the_ca_is_refused(
    sandbox: SandboxServer,
    tmp_path: Path,
    certificate: ServerCertificate,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="adapter")

    async def body() -> None:
        tls = certificate.server_context()
        async with running_rig(sandbox, tmp_path, start=False, ami={"tls": True}, tls=tls) as rig:
            await refused(rig, caplog, "certificate verify failed")

    run(body())


def test_the_host_name_is_checked(
    sandbox: SandboxServer,
    tmp_path: Path,
    misnamed: ServerCertificate,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="adapter")

    async def body() -> None:
        ami = {"tls": True, "tls_ca_file": str(misnamed.ca)}
        tls = misnamed.server_context()
        async with running_rig(sandbox, tmp_path, start=False, ami=ami, tls=tls) as rig:
            await refused(rig, caplog, "mismatch")

    run(body())


def test_tls_verify_false_accepts_any_certificate_with_a_warning(
    sandbox: SandboxServer,
    tmp_path: Path,
    misnamed: ServerCertificate,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="adapter")

    async def body() -> None:
        ami = {"tls": True, "tls_verify": False}
        tls = misnamed.server_context()
        async with running_rig(sandbox, tmp_path, ami=ami, tls=tls) as rig:
            await agent_call(rig)

    run(body())
    warnings = [r.getMessage() for r in caplog.records if "AMI_TLS_VERIFY=false" in r.getMessage()]
    assert len(warnings) == 1
