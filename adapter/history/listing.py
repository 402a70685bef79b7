"""The call history as the CLI and ``/calls`` serve it: filtered, newest first, with stats."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from adapter.flow.model import Outcome
from adapter.history.view import CallView, read_call
from adapter.store import CallStore

MAX_LIMIT = 1000
SCAN_CAP = 20_000  # records read at most to find ``limit`` calls of one outcome
RATE_WINDOW_SECONDS = 300
IN_FLIGHT_SHOWN = 100
OUTCOMES = tuple(o.value for o in Outcome)


@dataclass(frozen=True, slots=True)
class CallQuery:
    """Which calls to list: at most ``limit``, written at or after ``since``, of ``outcome``."""

    limit: int = 50
    since: float | None = None
    outcome: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
        if self.outcome is not None and self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")


def find_calls(store: CallStore, query: CallQuery) -> list[CallView]:
    """The calls ``query`` asks for, most recently written first."""
    scan = query.limit
    while True:
        rows = store.recent(scan, query.since)
        views = [read_call(row) for row in rows]
        if query.outcome is not None:
            views = [v for v in views if v.outcome == query.outcome]
        if len(views) >= query.limit or len(rows) < scan or scan >= SCAN_CAP:
            return views[: query.limit]
        scan = min(scan * 4, SCAN_CAP)


def calls_in_flight(store: CallStore) -> tuple[list[CallView], int]:
    """The most recently written calls in flight (at most IN_FLIGHT_SHOWN), and how many
    calls are in flight in all: a long conversation is not written to while it lasts, so
    it may be older than every call the history lists."""
    active = store.active_ids()
    views = []
    for call_id in reversed(active[-IN_FLIGHT_SHOWN:]):
        stored = store.get(call_id)
        if stored is not None and stored.active:
            views.append(read_call(stored))
    return [v for v in views if v.in_flight], len(active)


def list_calls(store: CallStore, query: CallQuery, now: float) -> dict[str, Any]:
    """The history as JSON: the calls' summaries, the calls in flight, the stats."""
    views = find_calls(store, query)
    in_flight, in_flight_count = calls_in_flight(store)
    stats = call_stats(views, now)
    stats["inFlight"] = in_flight_count
    return {
        "calls": [v.summary(now) for v in views],
        "inFlight": [v.summary(now) for v in in_flight],
        "stats": stats,
        "query": {"limit": query.limit, "since": query.since, "outcome": query.outcome},
        "now": now,
    }


def show_call(store: CallStore, call_id: str, now: float) -> dict[str, Any] | None:
    """One call's whole story as JSON, or None if the store has no such call."""
    stored = store.get(call_id)
    return read_call(stored).story(now) if stored is not None else None


def call_stats(views: list[CallView], now: float) -> dict[str, Any]:
    """Rates over the listed calls.

    - inFlight: how many of them are in flight;
    - handoffsPerMinute: hand-offs started in the last 5 minutes, per minute;
    - fallbackRate: the share of decided calls that went to the fallback;
    - createMs: how long the flow waited for each call transfer create, from its
      "transfer requested" entry to the next one (the API's answer time as the caller
      lived it, client retries and rate limiting included).
    """
    recent = [h for v in views for h in v.handoffs if h["startedAt"] >= now - RATE_WINDOW_SECONDS]
    decided = [v for v in views if v.outcome is not None and not v.in_flight]
    fallbacks = sum(1 for v in decided if v.outcome == Outcome.FALLBACK.value)
    creates = sorted(ms for v in views for ms in v.create_ms)
    return {
        "calls": len(views),
        "inFlight": sum(1 for v in views if v.in_flight),
        "handoffsPerMinute": round(len(recent) * 60 / RATE_WINDOW_SECONDS, 2),
        "fallbackRate": round(fallbacks / len(decided), 4) if decided else None,
        "createMs": _percentiles(creates),
    }


def _percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "p50": None, "p95": None, "max": None}
    p95 = values[0]
    if len(values) > 1:
        p95 = statistics.quantiles(values, n=20, method="inclusive")[18]
    return {
        "count": len(values),
        "p50": round(statistics.median(values), 1),
        "p95": round(p95, 1),
        "max": round(values[-1], 1),
    }
