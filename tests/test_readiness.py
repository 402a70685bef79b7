"""/readyz and its cached credential check, against the real sandbox; /metrics's token."""

from __future__ import annotations

import logging
import threading

import httpx
import pytest

from adapter.config import Secret
from adapter.genagent import GenAgentClient
from adapter.observe.endpoints import bearer_matches
from adapter.observe.readiness import CheckResult, CredentialCheck
from adapter.sandbox import SandboxServer
from tests.conftest import FAST_RETRIES, settings_for
from tests.twilio_stack import Stack, call_params


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_verdict_is_cached_for_the_interval(sandbox: SandboxServer) -> None:
    clock = Clock()
    calls = []
    with GenAgentClient(settings_for(sandbox.url), policy=FAST_RETRIES) as client:
        original = client.get_transfer

        def counted(transfer_id: str, **kwargs: object) -> object:
            calls.append(transfer_id)
            return original(transfer_id, **kwargs)  # type: ignore[arg-type]

        client.get_transfer = counted  # type: ignore[method-assign]
        check = CredentialCheck(client, interval=30, wait=10, clock=clock)
        assert check.result().ok
        assert check.result().detail == "credentials accepted"
        clock.now += 29
        assert check.result().ok
        assert len(calls) == 1  # a probe within the interval costs nothing
        clock.now += 2
        assert check.result().ok
        assert len(calls) == 2
        assert all(call.startswith("readiness-probe-") for call in calls)


def test_rejected_credentials_fail_and_an_outage_keeps_an_earlier_accept(
    sandbox: SandboxServer,
) -> None:
    clock = Clock()
    wrong = settings_for(sandbox.url, api_secret=Secret("wrong-one"))
    with GenAgentClient(wrong, policy=FAST_RETRIES) as client:
        result = CredentialCheck(client, interval=30, wait=10, clock=clock).result()
    assert (result.ok, result.detail) == (False, "credentials rejected (401)")

    with GenAgentClient(settings_for(sandbox.url), policy=FAST_RETRIES) as client:
        check = CredentialCheck(client, interval=30, wait=10, clock=clock)
        assert check.result().ok
        httpx.post(f"{sandbox.url}/sandbox/faults", json={"fail": {"status": 503, "count": 99}})
        clock.now += 31
        during = check.result()
    assert during.ok
    assert "accepted earlier" in during.detail


def test_a_slow_api_is_no_verdict_within_the_wait(sandbox: SandboxServer) -> None:
    httpx.post(f"{sandbox.url}/sandbox/faults", json={"latencyMs": 3000}).raise_for_status()
    with GenAgentClient(settings_for(sandbox.url), policy=FAST_RETRIES) as client:
        check = CredentialCheck(client, interval=30, wait=0.5)
        found: list[CheckResult] = []
        probe = threading.Thread(target=lambda: found.append(check.result()), daemon=True)
        probe.start()
        probe.join(timeout=30)
    [result] = found
    assert not result.ok
    assert result.detail in ("not checked yet", "no verdict: timeout (ApiTimeoutError)")


def test_readyz_names_each_check(stack: Stack) -> None:
    ready = stack.http.get(f"{stack.web.url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "checks": {
            "store": {"ok": True, "detail": "store answers"},
            "genagent_api": {"ok": True, "detail": "credentials accepted"},
        },
    }
    assert stack.http.get(f"{stack.web.url}/healthz").json() == {"status": "ok"}
    assert stack.http.get(f"{stack.web.url}/metrics").status_code == 404  # no METRICS_TOKEN


def test_bearer_token_comparison() -> None:
    token = Secret("metrics-token-0123456789")
    assert bearer_matches("Bearer metrics-token-0123456789", token)
    assert not bearer_matches("Bearer metrics-token-012345678", token)
    assert not bearer_matches("metrics-token-0123456789", token)
    assert not bearer_matches("Bearer métrics", token)


def test_a_rejected_signature_logs_the_url_it_checked(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="adapter.twilio"):
        response = stack.post(
            "/twilio/voice?task=billing&iv_account=secret-7781",
            call_params("CA-sig"),
            signature="forged",
        )
    assert response.status_code == 403
    [line] = [r for r in caplog.records if "X-Twilio-Signature" in r.getMessage()]
    message = line.getMessage()
    assert f"{stack.web.url}/twilio/voice?task=***&iv_account=***" in message
    assert "invalid" in message
    assert "secret-7781" not in message
    assert "forged" not in message
