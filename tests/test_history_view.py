"""Reading stored records into the history: both record shapes, masking, tolerance, stats."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.history import CallQuery, list_calls, parse_since, read_call, show_call
from adapter.history.listing import IN_FLIGHT_SHOWN
from adapter.history.render import call_lines, story_lines
from adapter.history.view import infer_front
from adapter.store import SQLiteCallStore, Stored
from tests.history_records import SID, T0, record


def stored(data: dict[str, Any], updated_at: float = T0 + 63) -> Stored:
    return Stored(str(data.get("callId", SID)), data, 3, False, updated_at)


def test_a_record_of_today_reads_as_one_handoff_with_every_attempt() -> None:
    view = read_call(stored(record()))
    assert (view.front, view.outcome, view.route, view.attempts) == (
        "twilio",
        "agent-returned",
        "agent",
        2,
    )
    assert view.reason == "GenerativeAgent asked for a human agent"
    assert not view.in_flight
    assert view.duration(now=T0 + 999) == pytest.approx(62.2)
    (handoff,) = view.handoffs
    assert [a["outcome"] for a in handoff["attempts"]] == ["no-answer", "agent-returned"]
    assert handoff["route"]["transferType"] == "AGENT"
    # The creates' answer times: from "transfer requested" to the next entry.
    assert view.create_ms == pytest.approx((50.0, 30.0))


def test_a_record_with_handoffs_groups_attempts_by_handoff() -> None:
    data = record(phase="holding", outcome=None)
    data["attempts"][0]["handoff"] = 1
    data["attempts"][1].update(handoff=2, returnedAt=T0 + 62.0)
    data["handoffs"] = [
        {
            "number": 1,
            "token": "t1",
            "conversationId": SID,
            "taskName": "billing",
            "inputVariables": {"pin": "0000"},
            "startedAt": T0,
            "outcome": "fallback",
            "route": {"kind": "fallback", "reason": "no transfer was reached"},
        },
        {
            "number": 2,
            "token": "t2",
            "conversationId": SID,
            "taskName": "billing",
            "inputVariables": {},
            "startedAt": T0 + 20,
            "outcome": None,
            "route": None,
        },
    ]
    view = read_call(stored(data))
    assert [len(h["attempts"]) for h in view.handoffs] == [1, 1]
    assert view.handoffs[1]["attempts"][0]["returnedAt"] == T0 + 62.0
    assert view.handoffs[0]["inputVariables"] == {"pin": "***(4)"}
    assert view.in_flight  # holding: the context is being read
    assert view.story(now=T0 + 70)["handoffCount"] == 2


def test_nothing_in_a_story_shows_caller_data_in_clear() -> None:
    data = record()
    data["attempts"][0]["detail"] = "dial failed to +15551230001"
    story = read_call(stored(data)).story(now=T0 + 70)
    text = json.dumps(story) + "\n".join(story_lines(story))
    for secret in ("3434", "5551230001", "9995550101", "123-45-6789", "chargeback", "5550100"):
        assert secret not in text
    assert story["inputVariables"] == {"accountNumber": "***(4)", "callerNumber": "***(12)"}
    assert story["handoffs"][0]["attempts"][0]["transferNumber"] == "***01"
    assert story["handoffs"][0]["route"]["destination"] == "***00"
    assert SID in text
    assert "billing_dispute" in text
    assert "accountNumber" in text


def test_an_api_failure_names_its_http_status() -> None:
    attempt = {
        "number": 1,
        "transferId": f"{SID}-1",
        "outcome": "api-error",
        "detail": "ServiceUnavailableError: HTTP 503 code=503-01: Service Unavailable",
    }
    route = {"kind": "fallback", "reason": attempt["detail"]}
    story = read_call(stored(record(attempts=[attempt], route=route, outcome="fallback"))).story(0)
    assert story["handoffs"][0]["attempts"][0]["httpStatus"] == 503
    assert story["route"] == "fallback"


def test_a_caller_who_hung_up_is_route_hangup_with_the_reason() -> None:
    data = record(phase="ended", outcome="caller-hung-up", route=None)
    data["timeline"].append([T0 + 63, "ended", "caller hung up during the transfer"])
    view = read_call(stored(data))
    assert (view.route, view.reason) == ("hangup", "caller hung up during the transfer")


@pytest.mark.parametrize(
    ("call_id", "front"),
    [(SID, "twilio"), ("1700000000.12", "asterisk"), ("CA123", "unknown"), ("x" * 40, "unknown")],
)
def test_the_front_is_inferred_from_the_call_id(call_id: str, front: str) -> None:
    assert infer_front(call_id) == front


def test_a_front_recorded_in_the_record_wins() -> None:
    assert read_call(stored(record("call-7", front="asterisk"))).front == "asterisk"


secret_values = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True),
    st.text(min_size=1, max_size=20).map(lambda text: "SECRET" + text),
    max_size=4,
)
numbers = st.from_regex(r"\+1999[0-9]{7}", fullmatch=True)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(secret_values, secret_values, numbers, numbers)
def test_variable_values_and_numbers_never_show_in_a_story(
    caller: dict[str, str], agent: dict[str, str], transfer: str, destination: str
) -> None:
    data = record(inputVariables=caller)
    data["attempts"][0].update(transferNumber=transfer, detail=f"dial to {transfer} failed")
    data["route"].update(transferVariables=agent, referenceVariables=agent, destination=destination)
    data["route"]["reason"] = f"sent to {destination}"
    story = read_call(stored(data)).story(now=T0)
    text = "\n".join(story_lines(story))
    assert "SECRET" not in text + json.dumps(story)
    for number in (transfer, destination):
        assert number[1:-2] not in text
        assert number[1:-2] not in json.dumps(story["handoffs"])
    assert all(name in text for name in caller | agent)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=8,
)
record_keys = st.sampled_from(
    [
        "callId",
        "phase",
        "outcome",
        "attempts",
        "route",
        "timeline",
        "createdAt",
        "handoffs",
        "inputVariables",
        "taskName",
        "front",
    ]
)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.dictionaries(record_keys, json_values | st.lists(st.lists(json_values, max_size=3))))
def test_any_malformed_record_reads_without_raising(data: dict[str, Any]) -> None:
    view = read_call(Stored("CA-x", data, 1, True, T0))
    json.dumps(view.story(now=T0))
    story_lines(view.story(now=T0))
    call_lines([view.summary(now=T0)])


@given(st.integers(0, 10**6), st.sampled_from(["s", "m", "h", "d", "w"]))
def test_a_span_counts_back_from_now(amount: int, unit: str) -> None:
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    assert parse_since(f"{amount}{unit}", now=T0) == T0 - amount * seconds


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)))
def test_an_iso_timestamp_is_that_instant_utc_when_zoneless(moment: datetime) -> None:
    expected = moment.replace(tzinfo=UTC).timestamp()
    assert parse_since(moment.isoformat(), now=T0) == expected
    assert parse_since(moment.isoformat() + "Z", now=T0) == expected


@pytest.mark.parametrize("text", ["", "15", "m15", "-2h", "2 hours", "yesterday", "1.5h"])
def test_a_since_that_names_no_time_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="15m, 2h, 1d"):
        parse_since(text, now=T0)


def test_listing_filters_by_outcome_beyond_the_first_page_and_keeps_newest_first() -> None:
    with SQLiteCallStore(":memory:") as store:
        store.create("CA-fallback", record("CA-fallback", outcome="fallback"), active=False)
        for n in range(30):
            store.create(f"CA-{n}", record(f"CA-{n}"), active=False)
        store.create("CA-fallback-2", record("CA-fallback-2", outcome="fallback"), active=False)
        history = list_calls(store, CallQuery(limit=5, outcome="fallback"), now=time.time())
        assert [c["callId"] for c in history["calls"]] == ["CA-fallback-2", "CA-fallback"]
        everything = list_calls(store, CallQuery(limit=10), now=time.time())
        assert len(everything["calls"]) == 10
        assert everything["calls"][0]["callId"] == "CA-fallback-2"
        assert show_call(store, "CA-nope", now=time.time()) is None


def test_a_long_call_in_flight_is_listed_even_when_older_than_every_listed_call() -> None:
    with SQLiteCallStore(":memory:") as store:
        store.create("CA-long", record("CA-long", outcome=None, phase="dialing"), active=True)
        for n in range(IN_FLIGHT_SHOWN + 20):
            store.create(f"CA-{n}", record(f"CA-{n}"), active=False)
        history = list_calls(store, CallQuery(limit=10), now=time.time())
    assert "CA-long" not in [c["callId"] for c in history["calls"]]
    assert [c["callId"] for c in history["inFlight"]] == ["CA-long"]
    assert history["inFlight"][0]["inFlight"] is True
    assert history["stats"]["inFlight"] == 1


def test_stats_rates_over_the_listed_calls() -> None:
    now = T0 + 100
    with SQLiteCallStore(":memory:") as store:
        store.create("CA-a", record("CA-a"), active=False)
        store.create("CA-b", record("CA-b", outcome="fallback"), active=False)
        store.create("CA-c", record("CA-c", outcome=None, phase="dialing", createdAt=T0 - 600))
        stats = list_calls(store, CallQuery(), now)["stats"]
    assert stats["inFlight"] == 1
    assert stats["fallbackRate"] == 0.5  # the call in flight is not decided yet
    assert stats["handoffsPerMinute"] == pytest.approx(2 / 5)  # CA-c began 10 min ago
    assert stats["createMs"] == {"count": 6, "p50": 40.0, "p95": 50.0, "max": 50.0}


@pytest.mark.parametrize("query", [{"limit": 0}, {"limit": 1001}, {"outcome": "won"}])
def test_a_query_out_of_bounds_is_refused(query: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"limit|outcome"):
        CallQuery(**query)
