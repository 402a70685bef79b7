"""The transfer flow without a web front: its rules, against the sandbox and a real store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from adapter.flow import (
    AsyncTransferFlow,
    CallRecord,
    CallStart,
    Dial,
    DialResult,
    FlowPolicy,
    Hangup,
    Outcome,
    Route,
    RouteKind,
    TransferFlow,
)
from adapter.flow.model import step_from_json, step_to_json
from adapter.genagent import AsyncGenAgentClient, GenAgentClient
from adapter.sandbox import SandboxServer
from adapter.store import CallStore, open_store
from tests.conftest import FAST_RETRIES, settings_for


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CallStore]:
    opened = open_store(f"sqlite:///{tmp_path / 'flow.sqlite3'}")
    yield opened
    opened.close()


@pytest.fixture
def client(sandbox: SandboxServer) -> Iterator[GenAgentClient]:
    with GenAgentClient(settings_for(sandbox.url), policy=FAST_RETRIES) as ga:
        yield ga


def start(flow: TransferFlow, call_id: str = "call-1") -> Dial:
    step = flow.start(CallStart(call_id=call_id, conversation_id=f"conv-{call_id}", country="US"))
    assert isinstance(step, Dial)
    return step


@pytest.mark.parametrize(
    ("left", "expected"),
    [(None, 20), (60, 20), (20, 15), (10.5, 5), (9.9, None), (0, None), (-30, None)],
)
def test_dial_timeout_fits_before_expiry(left: float | None, expected: int | None) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    expire_at = None if left is None else now + timedelta(seconds=left)
    assert FlowPolicy().dial_timeout_until(expire_at, now) == expected


def test_steps_round_trip_through_json() -> None:
    route = Route(RouteKind.SYSTEM, "r", "SYSTEM", "task", {"a": "1"}, {"b": "2"}, "t-1", None)
    for step in (Dial(2, "t-2", "+19995550100", 15), Hangup(), route):
        assert step_from_json(step_to_json(step)) == step


def test_record_round_trips_through_json(client: GenAgentClient, store: CallStore) -> None:
    flow = TransferFlow(client, store)
    start(flow)
    stored = store.get("call-1")
    assert stored is not None
    record = CallRecord.from_json(stored.data)
    assert CallRecord.from_json(record.to_json()) == record


def test_a_number_that_expires_too_soon_is_not_dialed(
    make_sandbox,
    store: CallStore,  # type: ignore[no-untyped-def]
) -> None:
    short = make_sandbox(expire_seconds=8)  # less than the 5 s margin + 5 s of ringing
    with GenAgentClient(settings_for(short.url), policy=FAST_RETRIES) as ga:
        step = TransferFlow(ga, store).start(CallStart("call-x", "conv-x", "US"))
    assert isinstance(step, Route)
    assert step.kind is RouteKind.FALLBACK
    record = CallRecord.from_json(store.get("call-x").data)  # type: ignore[union-attr]
    assert [a.outcome for a in record.attempts] == [Outcome.EXPIRED] * 3


def test_stale_dial_result_for_an_older_attempt_changes_nothing(
    client: GenAgentClient, store: CallStore
) -> None:
    flow = TransferFlow(client, store)
    first = start(flow)
    second = flow.dial_ended("call-1", first.attempt, DialResult.NO_ANSWER)
    assert isinstance(second, Dial)
    late = flow.dial_ended("call-1", first.attempt, DialResult.BUSY)  # redelivered, changed
    assert late == second
    record = flow.load("call-1")
    assert record is not None
    assert len(record.attempts) == 2


def test_old_records_are_purged(client: GenAgentClient, store: CallStore) -> None:
    flow = TransferFlow(client, store, FlowPolicy(retention_hours=0.3 / 3600, purge_every=0))
    start(flow, "old")
    time.sleep(0.4)
    flow.call_ended("new", "completed")
    assert store.get("old") is None
    assert store.get("new") is not None


def test_async_flow_runs_the_same_rules(sandbox: SandboxServer, store: CallStore) -> None:
    async def scenario() -> tuple[Dial, Route]:
        async with AsyncGenAgentClient(settings_for(sandbox.url), policy=FAST_RETRIES) as ga:
            flow = AsyncTransferFlow(ga, store, FlowPolicy(poll_interval=0.05))
            calls = [CallStart(f"a-{n}", f"conv-{n}", "US") for n in range(20)]
            dials = await asyncio.gather(*(flow.start(call) for call in calls))
            assert all(isinstance(d, Dial) for d in dials)
            first = dials[0]
            assert isinstance(first, Dial)
            base = f"{sandbox.url}/sandbox"
            async with httpx.AsyncClient() as http:
                await http.post(f"{base}/calls", json={"transferNumber": first.number})
                await http.post(
                    f"{base}/transfers/{first.transfer_id}/complete",
                    json={"transferType": "AGENT"},
                )
            route = await flow.dial_ended("a-0", 1, DialResult.AGENT_DISCONNECTED)
            assert isinstance(route, Route)
            await flow.call_ended("a-1", "completed")
            assert len(await flow.in_flight()) == 18
            flow.close()
            return first, route

    dial, route = asyncio.run(scenario())
    assert route.kind is RouteKind.AGENT
    assert route.transfer_id == dial.transfer_id
    assert store.get("a-1").data["phase"] == "ended"  # type: ignore[union-attr]
    assert len(store.active_ids()) == 18


def test_a_replayed_hand_off_never_dials_an_expired_number(
    make_sandbox,
    store: CallStore,  # type: ignore[no-untyped-def]
) -> None:
    # 11 s numbers leave 6 s of ringing (5 s margin); 1.5 s later, too little is left.
    short = make_sandbox(expire_seconds=11)
    with GenAgentClient(settings_for(short.url), policy=FAST_RETRIES) as ga:
        flow = TransferFlow(ga, store)
        first = start(flow)
        assert start(flow) == first  # a prompt redelivery: the same answer
        time.sleep(1.5)
        replayed = start(flow)
        assert replayed.attempt == 2
        assert replayed.number != first.number
        record = flow.load("call-1")
        assert record is not None
        assert [a.outcome for a in record.attempts] == [Outcome.EXPIRED, None]
        assert start(flow) == replayed  # from now on, that is the answer
