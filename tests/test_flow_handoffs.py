"""The flow's hand-off rules against the sandbox and a real store: repeated hand-offs,
redeliveries, unusable numbers, and routing when the call's state is missing."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapter.flow import (
    AsyncTransferFlow,
    CallRecord,
    CallStart,
    Dial,
    DialResult,
    FlowPolicy,
    Hold,
    Outcome,
    Route,
    RouteKind,
    TransferFlow,
)
from adapter.flow.model import step_from_json, step_to_json
from adapter.genagent import AsyncGenAgentClient, GenAgentClient
from adapter.sandbox import SandboxServer
from adapter.store import CallStore, Stored, StoreUnavailableError, open_store
from tests.conftest import FAST_RETRIES, settings_for

SYSTEM = {"transferType": "SYSTEM", "transferVariables": {"menu": "3"}}
AGENT = {"transferType": "AGENT", "referenceVariables": {"case": "77"}}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CallStore]:
    opened = open_store(f"sqlite:///{tmp_path / 'flow.sqlite3'}")
    yield opened
    opened.close()


@pytest.fixture
def client(sandbox: SandboxServer) -> Iterator[GenAgentClient]:
    with GenAgentClient(settings_for(sandbox.url), policy=FAST_RETRIES) as ga:
        yield ga


def agent_talks(sandbox: SandboxServer, dial: Dial, output: dict[str, Any]) -> None:
    with httpx.Client(base_url=f"{sandbox.url}/sandbox") as http:
        http.post("/calls", json={"transferNumber": dial.number}).raise_for_status()
        http.post(f"/transfers/{dial.transfer_id}/complete", json=output).raise_for_status()


def hand_off(flow: TransferFlow, token: str | None, **extra: Any) -> Any:
    return flow.start(
        CallStart("call-1", extra.pop("conversation", None), "US", token=token, **extra)
    )


def test_hold_steps_round_trip_through_json() -> None:
    for step in (Hold(3, 0.5), Hold(1, 0.2, first=False)):
        assert step_from_json(step_to_json(step)) == step


def test_a_record_written_before_hand_offs_were_kept_reads_as_one() -> None:
    legacy = {
        "callId": "c",
        "conversationId": "conv",
        "country": "US",
        "phase": "dialing",
        "attempts": [{"number": 1, "transferId": "c-1", "transferNumber": "+15550001111"}],
        "steps": {},
        "timeline": [],
    }
    record = CallRecord.from_json(legacy)
    assert [(h.number, h.conversation_id) for h in record.handoffs] == [(1, "conv")]
    assert record.attempts[0].handoff == 1


def test_second_hand_off_resumes_the_conversation_with_its_own_task(
    sandbox: SandboxServer, client: GenAgentClient, store: CallStore
) -> None:
    flow = TransferFlow(client, store, FlowPolicy(poll_interval=0.05))
    first = hand_off(flow, "t1", conversation="conv-7", task_name="intro")
    assert isinstance(first, Dial)
    agent_talks(sandbox, first, SYSTEM)
    routed = flow.dial_ended("call-1", first.attempt, DialResult.AGENT_DISCONNECTED)
    assert isinstance(routed, Route)
    assert routed.kind is RouteKind.SYSTEM

    second = hand_off(flow, "t2", task_name="billing", input_variables={"k": "v"})
    assert isinstance(second, Dial)
    assert (second.attempt, second.transfer_id) == (2, "call-1-2")
    assert second.number != first.number
    got = client.get_transfer("call-1-2")
    assert got.external_conversation_id == "conv-7"  # resumed by default
    assert got.input_context is not None
    assert got.input_context.task_name == "billing"
    assert hand_off(flow, "t1") == routed  # the first hand-off's retry: where it ended
    assert hand_off(flow, "t2") == second  # the second's retry: its own answer


def test_too_many_hand_offs_go_to_the_fallback(
    sandbox: SandboxServer, client: GenAgentClient, store: CallStore
) -> None:
    flow = TransferFlow(client, store, FlowPolicy(max_handoffs=2, poll_interval=0.05))
    for n in (1, 2):
        dial = hand_off(flow, f"t{n}")
        assert isinstance(dial, Dial)
        agent_talks(sandbox, dial, SYSTEM)
        flow.dial_ended("call-1", dial.attempt, DialResult.AGENT_DISCONNECTED)
    third = hand_off(flow, "t3")
    assert isinstance(third, Route)
    assert third.kind is RouteKind.FALLBACK
    assert "hand-offs" in third.reason
    assert len(client_transfers(sandbox)) == 2


def client_transfers(sandbox: SandboxServer) -> list[dict[str, Any]]:
    with httpx.Client() as http:
        return list(http.get(f"{sandbox.url}/sandbox/transfers").json()["transfers"])


def rewriting_transport(
    sandbox: SandboxServer, rewrite: Callable[[dict[str, Any]], None]
) -> httpx.MockTransport:
    """The real sandbox, with each create answer passed through ``rewrite``."""
    upstream = httpx.Client(base_url=sandbox.url)

    def handler(request: httpx.Request) -> httpx.Response:
        answer = upstream.request(
            request.method, request.url.path, content=request.content, headers=request.headers
        )
        if request.method != "POST" or answer.status_code >= 300:
            return httpx.Response(answer.status_code, content=answer.content)
        body = answer.json()
        rewrite(body)
        return httpx.Response(answer.status_code, json=body)

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(
    "number",
    ["+1 555 0100 200", "15550100200", "+1555\n0100200", "+155501002001234567", "+abc"],
)
def test_an_implausible_transfer_number_is_never_dialed(
    sandbox: SandboxServer, store: CallStore, number: str
) -> None:
    seen: list[int] = []

    def first_one_bad(body: dict[str, Any]) -> None:
        seen.append(1)
        if len(seen) == 1:
            body["phoneNumber"]["transferNumber"] = number

    transport = rewriting_transport(sandbox, first_one_bad)
    with GenAgentClient(settings_for(sandbox.url), transport=transport, policy=FAST_RETRIES) as ga:
        step = TransferFlow(ga, store).start(CallStart("call-1", None, "US"))
    assert isinstance(step, Dial)
    assert step.attempt == 2
    record = CallRecord.from_json(store.get("call-1").data)  # type: ignore[union-attr]
    assert record.attempts[0].outcome is Outcome.API_ERROR
    assert "E.164" in record.attempts[0].detail


def test_surrounding_whitespace_of_a_transfer_number_is_trimmed(
    sandbox: SandboxServer, store: CallStore
) -> None:
    def padded(body: dict[str, Any]) -> None:
        body["phoneNumber"]["transferNumber"] = f"  {body['phoneNumber']['transferNumber']}\t"

    transport = rewriting_transport(sandbox, padded)
    with GenAgentClient(settings_for(sandbox.url), transport=transport, policy=FAST_RETRIES) as ga:
        step = TransferFlow(ga, store).start(CallStart("call-1", None, "US"))
    assert isinstance(step, Dial)
    assert step.number == step.number.strip()
    assert step.attempt == 1


@pytest.mark.parametrize(("output", "kind"), [(AGENT, RouteKind.AGENT), (SYSTEM, RouteKind.SYSTEM)])
def test_a_dial_result_with_no_state_routes_from_the_transfer(
    sandbox: SandboxServer,
    client: GenAgentClient,
    store: CallStore,
    tmp_path: Path,
    output: dict[str, Any],
    kind: RouteKind,
) -> None:
    dial = TransferFlow(client, store).start(CallStart("call-1", None, "US"))
    assert isinstance(dial, Dial)
    agent_talks(sandbox, dial, output)
    with open_store(f"sqlite:///{tmp_path / 'empty.sqlite3'}") as empty:  # another instance
        route = TransferFlow(client, empty).dial_ended("call-1", 1, DialResult.AGENT_DISCONNECTED)
    assert isinstance(route, Route)
    assert route.kind is kind
    assert route.transfer_id == "call-1-1"
    assert route.transfer_variables == output.get("transferVariables", {})
    assert route.reference_variables == output.get("referenceVariables", {})


class UnreachableStore(CallStore):
    """A store whose backend is down: every operation fails as a real outage does."""

    def get(self, call_id: str) -> Stored | None:
        raise StoreUnavailableError("connection refused")

    def create(self, call_id: str, data: dict[str, Any], *, active: bool = True) -> Stored:
        raise StoreUnavailableError("connection refused")

    def update(
        self, call_id: str, data: dict[str, Any], *, expected_version: int, active: bool
    ) -> Stored:
        raise StoreUnavailableError("connection refused")

    def active_ids(self, limit: int = 10_000) -> list[str]:
        raise StoreUnavailableError("connection refused")

    def recent(self, limit: int = 100, since: float | None = None) -> list[Stored]:
        raise StoreUnavailableError("connection refused")

    def purge(self, older_than_seconds: float) -> int:
        raise StoreUnavailableError("connection refused")

    def close(self) -> None:
        pass


def test_an_unreachable_store_at_a_dial_result_still_follows_the_agent(
    sandbox: SandboxServer,
    client: GenAgentClient,
    store: CallStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    dial = TransferFlow(client, store).start(CallStart("call-1", None, "US"))
    assert isinstance(dial, Dial)
    agent_talks(sandbox, dial, AGENT)
    degraded = TransferFlow(client, UnreachableStore())
    with caplog.at_level(logging.INFO, logger="adapter.calls"):
        route = degraded.dial_ended("call-1", 1, DialResult.AGENT_DISCONNECTED)
    # Nothing is saved, so the decision is logged where it is taken.
    [line] = [r for r in caplog.records if r.name == "adapter.calls"]
    assert line.getMessage() == "call call-1 routed: agent (degraded mode, nothing saved)"
    assert getattr(line, "transfer_id", None) == "call-1-1"
    assert isinstance(route, Route)
    assert route.kind is RouteKind.AGENT
    # A transfer that never completed cannot be followed: the fallback, never an error.
    missing = degraded.dial_ended("call-9", 1, DialResult.AGENT_DISCONNECTED)
    assert isinstance(missing, Route)
    assert missing.kind is RouteKind.FALLBACK


def test_async_flow_tells_hand_offs_apart_by_token(
    sandbox: SandboxServer, store: CallStore
) -> None:
    async def scenario() -> None:
        async with AsyncGenAgentClient(settings_for(sandbox.url), policy=FAST_RETRIES) as ga:
            flow = AsyncTransferFlow(ga, store, FlowPolicy(poll_interval=0.05))
            first = await flow.start(CallStart("ch-1", "linked-1", "US", token="seq-1"))
            assert isinstance(first, Dial)
            assert await flow.start(CallStart("ch-1", "linked-1", "US", token="seq-1")) == first
            agent_talks(sandbox, first, SYSTEM)
            await flow.dial_ended("ch-1", 1, DialResult.AGENT_DISCONNECTED)
            second = await flow.start(CallStart("ch-1", "linked-1", "US", token="seq-2"))
            assert isinstance(second, Dial)
            assert second.attempt == 2
            flow.close()

    asyncio.run(scenario())
    assert len(client_transfers(sandbox)) == 2
    body = store.get("ch-1")
    assert body is not None
    assert json.loads(json.dumps(body.data))["handoffs"][1]["token"] == "seq-2"
