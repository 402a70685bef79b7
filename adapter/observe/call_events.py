"""What a saved call record says happened: the flow's metrics and its routing log line.

The flow's drivers call ``observe_save`` after each successful Save with the record as
last read in that run (None for a create) and the record saved. Comparing the two tells
what this write did, so a racing duplicate that loses the compare-and-set (and is
never saved) is never counted, and a replayed webhook that changes nothing counts
nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from adapter.observe.metrics import (
    ATTEMPTS,
    FALLBACKS,
    HANDOFF_ANSWER,
    HANDOFFS,
    OUTCOMES,
    ROUTE_KINDS,
    ROUTES,
    TRANSFERS_REQUESTED,
    label,
)
from adapter.observe.record_view import AttemptView, CallView, HandoffView, read_call

log = logging.getLogger("adapter.calls")

# Phases in which the adapter still holds the caller: ending there is a hang-up.
_HOLDING_PHASES = {"dialing", "holding"}
# Route reasons (as the flow words them) to a small fixed set of classes.
_REASON_CLASSES = (
    ("no transfer was reached", "no-transfer-reached"),
    ("hand-offs", "too-many-handoffs"),
    ("after the agent hung up", "context-not-ready"),
    ("caller disconnect", "caller-disconnect"),
    ("unknown transfertype", "unknown-transfer-type"),
    ("no outputcontext", "no-output-context"),
    ("store", "store-error"),
    ("internal error", "internal-error"),
    ("unknown call", "unknown-call"),
    ("no state for this call", "unknown-call"),
    ("without attempt", "unknown-call"),
    ("out-of-order", "unknown-call"),
)


def fallback_reason(reason: str, attempts: tuple[AttemptView, ...] = ()) -> str:
    """The class of a fallback's reason: one of ``metrics.FALLBACK_REASONS``."""
    lowered = reason.lower()
    for needle, reason_class in _REASON_CLASSES:
        if needle in lowered:
            return reason_class
    if attempts and attempts[-1].outcome == "api-error":
        return "api-error"
    return "other"


def count_fallback(reason_class: str) -> None:
    """A fallback decided outside the flow (nothing saved): counted as a route too."""
    ROUTES.labels("fallback").inc()
    FALLBACKS.labels(reason_class).inc()


def observe_save(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> None:
    """Count and log what the write of ``after`` over ``before`` did."""
    new, old = read_call(after), read_call(before)
    if new is None:
        return
    old_handoffs = {h.number: h for h in old.handoffs} if old else {}
    old_attempts = {(a.handoff, a.number): a for a in old.attempts} if old else {}
    for handoff in new.handoffs:
        prior = old_handoffs.get(handoff.number)
        if prior is None:
            HANDOFFS.inc()
            if handoff.started_at is not None:
                HANDOFF_ANSWER.observe(max(0.0, time.time() - handoff.started_at))
        for attempt in handoff.attempts:
            was = old_attempts.get((attempt.handoff, attempt.number))
            if was is None:
                TRANSFERS_REQUESTED.inc()
            if attempt.outcome and (was is None or was.outcome is None):
                ATTEMPTS.labels(label(attempt.outcome, OUTCOMES)).inc()
        if handoff.route and (prior is None or prior.route != handoff.route):
            _routed(new, handoff)
    if old is not None and old.phase in _HOLDING_PHASES and new.phase == "ended":
        _hung_up(new)


def _routed(call: CallView, handoff: HandoffView) -> None:
    route = handoff.route or {}
    kind = label(route.get("kind"), ROUTE_KINDS)
    reason = str(route.get("reason") or "")
    ROUTES.labels(kind).inc()
    if kind == "fallback":
        FALLBACKS.labels(fallback_reason(reason, handoff.attempts)).inc()
    if not log.isEnabledFor(logging.INFO):
        return
    last = handoff.attempts[-1] if handoff.attempts else None
    log.info(
        "call %s routed: %s",
        call.call_id,
        kind,
        extra={
            "call_id": call.call_id,
            "handoff": handoff.number,
            "attempt": last.number if last else None,
            "transfer_id": route.get("transferId") or (last.transfer_id if last else None),
            "outcome": handoff.outcome,
            "route": kind,
            "reason": reason,
        },
    )


def _hung_up(call: CallView) -> None:
    ROUTES.labels("hangup").inc()
    if not log.isEnabledFor(logging.INFO):
        return
    handoff = call.current
    last = handoff.attempts[-1] if handoff and handoff.attempts else None
    log.info(
        "call %s routed: hangup",
        call.call_id,
        extra={
            "call_id": call.call_id,
            "handoff": handoff.number if handoff else None,
            "attempt": last.number if last else None,
            "transfer_id": last.transfer_id if last else None,
            "outcome": call.outcome or "caller-hung-up",
            "route": "hangup",
            "reason": "the caller hung up",
        },
    )
