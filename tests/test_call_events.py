"""The flow's metrics and routing line, from what each successful save changed."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from adapter.flow import CallStart, Dial, DialResult, Route, RouteKind, TransferFlow
from adapter.genagent import GenAgentClient
from adapter.observe.call_events import fallback_reason, observe_save
from adapter.observe.record_view import read_call
from adapter.sandbox import SandboxServer
from adapter.store import CallStore, Stored, open_store
from tests.conftest import FAST_RETRIES, settings_for

AGENT = {"transferType": "AGENT", "currentTaskName": "billing", "transferVariables": {"r": "v"}}


class Metrics:
    """Reads counters before and after, for the difference."""

    NAMES = (
        ("genagent_handoffs_total", {}),
        ("genagent_transfers_requested_total", {}),
        ("genagent_routes_total", {"kind": "agent"}),
        ("genagent_routes_total", {"kind": "fallback"}),
        ("genagent_routes_total", {"kind": "hangup"}),
        ("genagent_attempts_total", {"outcome": "agent-returned"}),
        ("genagent_attempts_total", {"outcome": "no-answer"}),
        ("genagent_fallbacks_total", {"reason": "no-transfer-reached"}),
    )

    def __init__(self) -> None:
        self.before = self._read()

    @staticmethod
    def _read() -> dict[str, float]:
        return {
            f"{name}{sorted(labels.items())}": REGISTRY.get_sample_value(name, labels) or 0.0
            for name, labels in Metrics.NAMES
        }

    def delta(self) -> dict[str, float]:
        after = self._read()
        return {k: after[k] - self.before[k] for k in after if after[k] != self.before[k]}


def key(name: str, **labels: str) -> str:
    return f"{name}{sorted(labels.items())}"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CallStore]:
    opened = open_store(f"sqlite:///{tmp_path / 'calls.sqlite3'}")
    yield opened
    opened.close()


@pytest.fixture
def flow(sandbox: SandboxServer, store: CallStore) -> Iterator[TransferFlow]:
    with GenAgentClient(settings_for(sandbox.url), policy=FAST_RETRIES) as client:
        yield TransferFlow(client, store)


def complete(sandbox: SandboxServer, number: str, output: dict[str, Any]) -> None:
    with httpx.Client(base_url=f"{sandbox.url}/sandbox", timeout=10) as http:
        transfer = http.post("/calls", json={"transferNumber": number}).json()
        http.post(f"/transfers/{transfer['id']}/complete", json=output).raise_for_status()


def start(flow: TransferFlow, call_id: str) -> Dial:
    step = flow.start(CallStart(call_id, f"conv-{call_id}", "US", input_variables={"a": "x"}))
    assert isinstance(step, Dial)
    return step


def test_a_call_counts_once_and_logs_one_routing_line(
    flow: TransferFlow, sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    start(flow, "call-a")
    retried = flow.dial_ended("call-a", 1, DialResult.NO_ANSWER)
    assert isinstance(retried, Dial)
    # A redelivered hand-off gets the dial still pending, and no new transfer.
    assert flow.start(CallStart("call-a", "conv-call-a", "US")) == retried
    dial = flow.load("call-a").current  # type: ignore[union-attr]
    assert dial is not None
    complete(sandbox, dial.transfer_number or "", AGENT)
    with caplog.at_level(logging.INFO, logger="adapter.calls"):
        route = flow.dial_ended("call-a", 2, DialResult.AGENT_DISCONNECTED)
        assert flow.dial_ended("call-a", 2, DialResult.AGENT_DISCONNECTED) == route  # replayed
    flow.call_ended("call-a", "completed")  # after the route: not a hang-up
    assert isinstance(route, Route)
    assert metrics.delta() == {
        key("genagent_handoffs_total"): 1,
        key("genagent_transfers_requested_total"): 2,
        key("genagent_attempts_total", outcome="no-answer"): 1,
        key("genagent_attempts_total", outcome="agent-returned"): 1,
        key("genagent_routes_total", kind="agent"): 1,
    }
    [line] = [r for r in caplog.records if r.name == "adapter.calls"]
    assert line.levelno == logging.INFO
    assert (line.call_id, line.route, line.outcome) == ("call-a", "agent", "agent-returned")  # type: ignore[attr-defined]
    assert (line.handoff, line.attempt, line.transfer_id) == (1, 2, "call-a-2")  # type: ignore[attr-defined]


def test_a_caller_hanging_up_while_dialing_is_a_hangup_route(flow: TransferFlow) -> None:
    metrics = Metrics()
    start(flow, "call-h")
    flow.call_ended("call-h", "completed")
    flow.call_ended("call-h", "completed")  # the status callback, redelivered
    flow.call_ended("call-never-handed-off", "completed")  # no hand-off: nothing to count
    assert metrics.delta() == {
        key("genagent_handoffs_total"): 1,
        key("genagent_transfers_requested_total"): 1,
        key("genagent_routes_total", kind="hangup"): 1,
    }


class RacingStore(CallStore):
    """A store where two threads both read a call before either writes it."""

    def __init__(self, inner: CallStore) -> None:
        self.inner = inner
        self.barrier = threading.Barrier(2, timeout=10)
        self.racing = False

    def get(self, call_id: str) -> Stored | None:
        stored = self.inner.get(call_id)
        if self.racing and threading.current_thread().name.startswith("racer"):
            self.barrier.wait()  # both have loaded the same version
            self.racing = False
        return stored

    def create(self, call_id: str, data: dict[str, Any], *, active: bool = True) -> Stored:
        return self.inner.create(call_id, data, active=active)

    def update(
        self, call_id: str, data: dict[str, Any], *, expected_version: int, active: bool = True
    ) -> Stored:
        return self.inner.update(call_id, data, expected_version=expected_version, active=active)

    def active_ids(self, limit: int = 10_000) -> list[str]:
        return self.inner.active_ids(limit)

    def recent(self, limit: int = 100, since: float | None = None) -> list[Stored]:
        return self.inner.recent(limit, since)

    def purge(self, older_than_seconds: float) -> int:
        return self.inner.purge(older_than_seconds)

    def close(self) -> None:
        self.inner.close()


def test_a_duplicate_that_loses_the_race_is_not_counted(
    sandbox: SandboxServer, store: CallStore
) -> None:
    racing = RacingStore(store)
    with GenAgentClient(settings_for(sandbox.url), policy=FAST_RETRIES) as client:
        flow = TransferFlow(client, racing)
        start(flow, "call-r")
        metrics = Metrics()
        posts = _posts()
        racing.racing = True
        results: list[object] = []

        def deliver() -> None:
            results.append(flow.dial_ended("call-r", 1, DialResult.NO_ANSWER))

        threads = [threading.Thread(target=deliver, name=f"racer-{i}") for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert len(results) == 2
    assert results[0] == results[1]  # the loser answers what the winner saved
    assert _posts() - posts == 2  # both decided (and asked for a transfer); one was saved
    assert metrics.delta() == {
        key("genagent_transfers_requested_total"): 1,
        key("genagent_attempts_total", outcome="no-answer"): 1,
    }


def _posts() -> float:
    return sum(
        REGISTRY.get_sample_value(
            "genagent_api_requests_total", {"endpoint": "POST call-transfers", "status": status}
        )
        or 0.0
        for status in ("200", "201", "409")
    )


def test_fallbacks_are_classed_by_reason() -> None:
    view = read_call({"attempts": [{"number": 1, "outcome": "api-error"}], "route": {}})
    assert view is not None
    assert fallback_reason("HTTP 503 code=503-01: down", view.attempts) == "api-error"
    assert fallback_reason("no transfer was reached in 3 attempts") == "no-transfer-reached"
    assert fallback_reason("transfer still ONGOING after the agent hung up") == "context-not-ready"
    assert fallback_reason("unknown transferType 'X'") == "unknown-transfer-type"
    assert fallback_reason("something new") == "other"


def test_a_fallback_route_counts_its_reason_class() -> None:
    metrics = Metrics()
    before = {"callId": "c", "phase": "dialing", "attempts": [{"number": 1, "outcome": None}]}
    after = {
        "callId": "c",
        "phase": "routed",
        "outcome": "fallback",
        "attempts": [{"number": 1, "outcome": "no-answer"}],
        "route": Route(RouteKind.FALLBACK, "no transfer was reached in 1 attempts").to_json(),
    }
    observe_save(before, after)
    assert metrics.delta() == {
        key("genagent_attempts_total", outcome="no-answer"): 1,
        key("genagent_routes_total", kind="fallback"): 1,
        key("genagent_fallbacks_total", reason="no-transfer-reached"): 1,
    }


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
_RECORD_KEYS = st.sampled_from(
    ["callId", "phase", "outcome", "attempts", "route", "handoffs", "createdAt", "x"]
)


@given(
    before=st.none() | st.dictionaries(_RECORD_KEYS, _JSON),
    after=st.dictionaries(_RECORD_KEYS, _JSON),
)
def test_malformed_records_never_break_the_observer(before: Any, after: Any) -> None:
    read_call(after)
    observe_save(before, after)
