"""Reading call records of today's shape and of the shape with repeated hand-offs."""

from __future__ import annotations

from adapter.flow import CallRecord
from adapter.flow.model import Attempt, Outcome, Phase, Route, RouteKind
from adapter.observe.record_view import read_call


def test_a_record_without_handoffs_is_one_handoff_holding_every_attempt() -> None:
    record = CallRecord("CA1", "conv", "US", created_at=100.0, phase=Phase.ROUTED)
    record.attempts = [
        Attempt(1, "CA1-1", outcome=Outcome.NO_ANSWER),
        Attempt(2, "CA1-2", outcome=Outcome.AGENT_RETURNED),
    ]
    record.route = Route(RouteKind.AGENT, "asked for a human", transfer_id="CA1-2")
    record.outcome = Outcome.AGENT_RETURNED
    view = read_call(record.to_json())
    assert view is not None
    assert (view.call_id, view.phase, view.outcome) == ("CA1", "routed", "agent-returned")
    [handoff] = view.handoffs
    assert (handoff.number, handoff.started_at, handoff.outcome) == (1, 100.0, "agent-returned")
    assert handoff.route is not None
    assert handoff.route["kind"] == "agent"
    assert [(a.number, a.handoff, a.outcome) for a in handoff.attempts] == [
        (1, 1, "no-answer"),
        (2, 1, "agent-returned"),
    ]


def test_a_record_made_by_an_early_hangup_has_no_handoff() -> None:
    view = read_call({"callId": "CA2", "phase": "ended", "attempts": [], "route": None})
    assert view is not None
    assert view.handoffs == ()


def test_repeated_handoffs_split_the_attempts_and_keep_their_routes() -> None:
    data = {
        "callId": "CA3",
        "phase": "holding",
        "outcome": None,
        "route": None,
        "attempts": [
            {"number": 1, "handoff": 1, "transferId": "CA3-1", "outcome": "agent-returned"},
            {"number": 2, "handoff": 2, "transferId": "CA3-2", "outcome": None},
        ],
        "handoffs": [
            {
                "number": 1,
                "startedAt": 10.0,
                "outcome": "agent-returned",
                "route": {"kind": "system"},
            },
            {"number": 2, "startedAt": 50.0, "outcome": None, "route": None},
        ],
    }
    view = read_call(data)
    assert view is not None
    first, second = view.handoffs
    assert first.route == {"kind": "system"}
    assert [a.transfer_id for a in first.attempts] == ["CA3-1"]
    assert [a.transfer_id for a in second.attempts] == ["CA3-2"]
    assert view.current is second
    assert second.started_at == 50.0


def test_nothing_is_not_a_call() -> None:
    assert read_call(None) is None
    assert read_call([]) is None  # type: ignore[arg-type]
