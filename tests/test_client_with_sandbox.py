"""The real clients over loopback against the sandbox running as a real HTTP server."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from adapter.genagent import (
    ApiConnectionError,
    ApiTimeoutError,
    AsyncGenAgentClient,
    AuthenticationError,
    ConflictError,
    GenAgentClient,
    MalformedResponseError,
    NotFoundError,
    PhoneNumberTransferRequest,
    RateLimitedError,
    ServiceUnavailableError,
    SipTransferRequest,
    TransferKind,
    TransferStatus,
    TransferType,
    UnprocessableEntityError,
)
from adapter.genagent.protocol import interpret
from adapter.sandbox import SandboxServer
from tests.conftest import FAST_RETRIES, settings_for


def phone(transfer_id: str = "t-1", conversation: str = "conv-1") -> PhoneNumberTransferRequest:
    return PhoneNumberTransferRequest(
        id=transfer_id,
        external_conversation_id=conversation,
        country="US",
        task_name="call_routing",
        input_variables={"accountNumber": "3434", "name": "John Doe"},
    )


def faults(sandbox: SandboxServer, **spec: Any) -> None:
    httpx.post(f"{sandbox.url}/sandbox/faults", json=spec).raise_for_status()


def remaining_faults(sandbox: SandboxServer) -> dict[str, Any]:
    return httpx.get(f"{sandbox.url}/sandbox/faults").json()


def connect(sandbox: SandboxServer, number: str) -> dict[str, Any]:
    response = httpx.post(f"{sandbox.url}/sandbox/calls", json={"transferNumber": number})
    response.raise_for_status()
    return response.json()


def control(sandbox: SandboxServer, path: str, body: Any = None) -> None:
    httpx.post(f"{sandbox.url}/sandbox/transfers/{path}", json=body).raise_for_status()


def transfer_count(sandbox: SandboxServer) -> int:
    return len(httpx.get(f"{sandbox.url}/sandbox/transfers").json()["transfers"])


def test_create_and_get_round_trip(client: GenAgentClient, sandbox: SandboxServer) -> None:
    created = client.create_transfer(phone())
    assert created.status is TransferStatus.ACTIVE
    assert created.type is TransferKind.PHONE_NUMBER
    assert created.transfer_number is not None
    assert created.transfer_number.startswith("+1999555")
    assert created.expire_at is not None
    assert created.expire_at.tzinfo is not None
    assert 55 < (created.expire_at - datetime.now(UTC)).total_seconds() <= 60
    assert created.input_context is not None
    assert created.input_context.input_variables == {"accountNumber": "3434", "name": "John Doe"}

    connect(sandbox, created.transfer_number)
    control(
        sandbox,
        "t-1/complete",
        {
            "transferType": "AGENT",
            "currentTaskName": "billing",
            "referenceVariables": {"acct": "1"},
            "transferVariables": {"queue": "vip"},
        },
    )
    done = client.get_transfer("t-1")
    assert done.status is TransferStatus.COMPLETED
    assert done.call_received_at is not None
    assert done.completed_at is not None
    assert done.output_context is not None
    assert done.output_context.transfer_type is TransferType.AGENT
    assert done.output_context.current_task_name == "billing"
    assert done.output_context.reference_variables == {"acct": "1"}
    assert done.output_context.transfer_variables == {"queue": "vip"}


def test_sip_transfer_round_trip(client: GenAgentClient) -> None:
    created = client.create_transfer(
        SipTransferRequest(
            id="sip-1",
            external_conversation_id="conv-sip",
            return_uri="sip:ivr@sbc.example.com;User-to-User=UUI-1",
            return_transfer_type="INVITE",  # type: ignore[arg-type]  # strings are accepted
        )
    )
    assert created.type is TransferKind.SIP
    assert created.sip is not None
    assert created.sip.return_uri == "sip:ivr@sbc.example.com;User-to-User=UUI-1"
    assert client.get_transfer("sip-1").sip == created.sip


def test_expired_transfer_reads_expired(make_sandbox: Any) -> None:
    server = make_sandbox(expire_seconds=0.3)
    with GenAgentClient(settings_for(server.url), policy=FAST_RETRIES) as client:
        client.create_transfer(phone())
        time.sleep(0.45)
        assert client.get_transfer("t-1").status is TransferStatus.EXPIRED


def test_create_is_idempotent_by_transfer_id(
    client: GenAgentClient, sandbox: SandboxServer
) -> None:
    first = client.create_transfer(phone())
    again = client.create_transfer(phone())
    assert again == first
    assert transfer_count(sandbox) == 1
    # Whatever became of it since, the saved transfer is what comes back.
    assert first.transfer_number is not None
    connect(sandbox, first.transfer_number)
    assert client.create_transfer(phone()).status is TransferStatus.ONGOING


def test_transfer_id_reused_by_another_conversation_is_a_conflict(
    client: GenAgentClient,
) -> None:
    client.create_transfer(phone("t-1", "conv-1"))
    with pytest.raises(ConflictError, match="another conversation"):
        client.create_transfer(phone("t-1", "conv-2"))


def test_slow_answer_then_retry_meets_409_and_returns_the_saved_transfer(
    make_sandbox: Any,
) -> None:
    server = make_sandbox()
    faults(server, slow={"delayMs": 600, "count": 1, "on": "create"})
    settings = settings_for(server.url, attempt_timeout=0.2, deadline=3.0)
    with GenAgentClient(settings, policy=FAST_RETRIES) as client:
        created = client.create_transfer(phone())
    assert created.id == "t-1"
    assert created.status is TransferStatus.ACTIVE
    assert transfer_count(server) == 1


def test_rate_limited_then_succeeds(client: GenAgentClient, sandbox: SandboxServer) -> None:
    faults(sandbox, fail={"status": 429, "count": 2})
    assert client.create_transfer(phone()).status is TransferStatus.ACTIVE
    assert remaining_faults(sandbox)["fail"] == []


def test_retry_after_longer_than_the_deadline_gives_up_at_once(sandbox: SandboxServer) -> None:
    faults(sandbox, fail={"status": 429, "count": 3, "retryAfter": 30})
    with GenAgentClient(settings_for(sandbox.url, deadline=1.0)) as client:
        with pytest.raises(RateLimitedError) as caught:
            client.create_transfer(phone())
    assert caught.value.retry_after == 30
    assert caught.value.request_id
    assert remaining_faults(sandbox)["fail"][0]["count"] == 2  # exactly one request was sent


def test_service_unavailable_is_retried_then_raised(
    client: GenAgentClient, sandbox: SandboxServer
) -> None:
    faults(sandbox, fail={"status": 503, "count": 5})
    with pytest.raises(ServiceUnavailableError) as caught:
        client.create_transfer(phone())
    assert caught.value.status == 503
    assert caught.value.code == "503-01"
    assert remaining_faults(sandbox)["fail"][0]["count"] == 1  # 1 try + 3 retries
    assert transfer_count(sandbox) == 0


def test_service_unavailable_twice_then_ok(client: GenAgentClient, sandbox: SandboxServer) -> None:
    faults(sandbox, fail={"status": 503, "count": 2, "on": "get"})
    client.create_transfer(phone())
    assert client.get_transfer("t-1").id == "t-1"


def test_malformed_json_is_not_retried(client: GenAgentClient, sandbox: SandboxServer) -> None:
    client.create_transfer(phone())
    faults(sandbox, malformed={"count": 2, "on": "get"})
    with pytest.raises(MalformedResponseError):
        client.get_transfer("t-1")
    assert remaining_faults(sandbox)["malformed"][0]["count"] == 1


def test_timeout_within_the_deadline(sandbox: SandboxServer) -> None:
    faults(sandbox, latencyMs=2000)
    settings = settings_for(sandbox.url, attempt_timeout=0.2, deadline=0.5)
    with GenAgentClient(settings, policy=FAST_RETRIES) as client:
        started = time.monotonic()
        with pytest.raises(ApiTimeoutError):
            client.get_transfer("anything")
        # Bounded by the deadline, not by the server's 2 s.
        assert time.monotonic() - started < 1.9


def test_lagging_completion_reads_ongoing_then_completed(
    client: GenAgentClient, sandbox: SandboxServer
) -> None:
    faults(sandbox, completionLagMs=300)
    created = client.create_transfer(phone())
    assert created.transfer_number is not None
    connect(sandbox, created.transfer_number)
    control(sandbox, "t-1/complete", {"transferType": "SYSTEM"})
    assert client.get_transfer("t-1").status is TransferStatus.ONGOING
    time.sleep(0.4)
    done = client.get_transfer("t-1")
    assert done.status is TransferStatus.COMPLETED
    assert done.output_context is not None
    assert done.output_context.transfer_type is TransferType.SYSTEM


def test_reconnecting_with_the_same_conversation_id(
    client: GenAgentClient, sandbox: SandboxServer
) -> None:
    first = client.create_transfer(phone("leg-1", "conv-x"))
    assert first.transfer_number is not None
    connect(sandbox, first.transfer_number)
    control(sandbox, "leg-1/caller-hangup")
    hung_up = client.get_transfer("leg-1")
    assert hung_up.output_context is not None
    assert hung_up.output_context.transfer_type is TransferType.CALLER_DISCONNECT

    second = client.create_transfer(phone("leg-2", "conv-x"))
    assert second.status is TransferStatus.ACTIVE
    assert second.external_conversation_id == "conv-x"
    conversation = httpx.get(f"{sandbox.url}/sandbox/conversations/conv-x").json()
    assert conversation["resumed"] is True
    assert [leg["id"] for leg in conversation["legs"]] == ["leg-1", "leg-2"]


def test_api_errors_carry_the_documented_fields(
    client: GenAgentClient, sandbox: SandboxServer
) -> None:
    with pytest.raises(NotFoundError) as missing:
        client.get_transfer("nope")
    assert missing.value.status == 404
    assert missing.value.request_id
    assert "nope" in missing.value.message

    with GenAgentClient(settings_for(sandbox.url, api_id="wrong")) as wrong:
        with pytest.raises(AuthenticationError):
            wrong.get_transfer("t-1")


def test_sandbox_rejections_surface_as_unprocessable(sandbox: SandboxServer) -> None:
    # Bypass the client's own checks to see the server's: send a raw bad body.
    with GenAgentClient(settings_for(sandbox.url)) as client:
        response = client._http.post(  # the pooled client, with its auth
            f"{sandbox.url}/generativeagent/v1/call-transfers",
            json={
                "id": "x",
                "externalConversationId": "c",
                "type": "PHONE_NUMBER",
                "phoneNumber": {"country": "XX"},
            },
        )
    with pytest.raises(UnprocessableEntityError, match="country"):
        interpret(response)


def test_unreachable_api_is_a_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        settings = settings_for(f"http://127.0.0.1:{port}", deadline=1.0)
        with GenAgentClient(settings, policy=FAST_RETRIES) as client:
            with pytest.raises(ApiConnectionError):
                client.get_transfer("t-1")


def test_async_client_many_calls_at_once(sandbox: SandboxServer) -> None:
    async def scenario() -> list[Any]:
        async with AsyncGenAgentClient(settings_for(sandbox.url), policy=FAST_RETRIES) as ga:
            created = await asyncio.gather(
                *(ga.create_transfer(phone(f"a-{n}", f"conv-{n}")) for n in range(40))
            )
            # Idempotent under concurrency too: the same ids again change nothing.
            again = await asyncio.gather(
                *(ga.create_transfer(phone(f"a-{n}", f"conv-{n}")) for n in range(40))
            )
            assert again == created
            return [await ga.get_transfer(t.id) for t in created[:3]] + created

    results = asyncio.run(scenario())
    numbers = {t.transfer_number for t in results[3:]}
    assert len(numbers) == 40
    assert all(t.status is TransferStatus.ACTIVE for t in results)
    assert transfer_count(sandbox) == 40


def test_async_client_retries_and_times_out(sandbox: SandboxServer) -> None:
    faults(sandbox, fail={"status": 503, "count": 1})

    async def scenario() -> None:
        settings = settings_for(sandbox.url, attempt_timeout=0.2, deadline=0.6)
        async with AsyncGenAgentClient(settings, policy=FAST_RETRIES) as ga:
            created = await ga.create_transfer(phone())
            assert created.status is TransferStatus.ACTIVE
            faults(sandbox, latencyMs=2000)
            with pytest.raises(ApiTimeoutError):
                await ga.get_transfer("t-1")

    asyncio.run(scenario())
