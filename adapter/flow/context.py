"""Reading GenerativeAgent's context after it hangs up, and routing by it.

Right after the agent side hangs up, the transfer can still say ONGOING for a moment.
A dial result waits for it only briefly (``hold_after``); then the caller is put on hold
(a Hold step: hold audio, never silence) and the front asks again (``context_poll``)
until COMPLETED or ``context_wait`` seconds after the hang-up, then the fallback. No
front event holds a thread for long waiting on the API.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Generator
from dataclasses import replace
from typing import Any

from adapter.flow.effects import Effect, GetTransfer, Pause
from adapter.flow.model import (
    Attempt,
    CallRecord,
    DialResult,
    Hangup,
    Hold,
    Outcome,
    Phase,
    Route,
    RouteKind,
    Step,
)
from adapter.flow.policy import FlowPolicy
from adapter.flow.routing import RouteContext, Router, decide, fallback, route_for
from adapter.genagent import CallTransfer, Deadline, GenAgentError, TransferStatus

log = logging.getLogger("adapter.flow")
# Routing decisions: the logger of adapter/observe/call_events.py's routing lines.
decisions = logging.getLogger("adapter.calls")


class ContextReads(ABC):
    """The context fetch, the routing decision and the fallback, shared by the rules."""

    def __init__(self, policy: FlowPolicy, router: Router) -> None:
        self.policy = policy
        self.router = router

    @abstractmethod
    def next_attempt(self, record: CallRecord, budget: Deadline) -> Generator[Effect, Any, Step]:
        """Request a new transfer for the call's current hand-off (or fall back)."""

    def read_context(
        self, record: CallRecord, attempt: Attempt, budget: Deadline, *, first: bool
    ) -> Generator[Effect, Any, Step]:
        """Read the transfer of ``attempt``: a route when COMPLETED, a new attempt when it
        never reached GenerativeAgent, the fallback when it failed or stayed ONGOING too
        long after the hang-up, else Hold (the phase becomes HOLDING)."""
        waited_until = time.monotonic() + (self.policy.hold_after if first else 0.0)
        while True:
            deadline = min(budget.remaining(), self.policy.create_deadline)
            try:
                transfer: CallTransfer = yield GetTransfer(attempt.transfer_id, deadline)
            except GenAgentError as exc:
                if self._overdue(attempt) or (first and self.policy.context_wait == 0):
                    attempt.outcome, attempt.detail = Outcome.API_ERROR, describe(exc)
                    record.note("context fetch failed", attempt.detail)
                    return self.fallback_route(record, attempt.detail)
                log.info("call %s: context fetch failed, asking again", record.call_id)
                break
            _note_status(record, transfer.status)
            if transfer.status == TransferStatus.COMPLETED:
                attempt.outcome = Outcome.AGENT_RETURNED
                return self.route(record, route_for(transfer), transfer)
            if transfer.status in (TransferStatus.ACTIVE, TransferStatus.EXPIRED):
                attempt.outcome = Outcome.EXPIRED
                attempt.detail = f"the number never reached GenerativeAgent ({transfer.status})"
                return (yield from self.next_attempt(record, budget))
            if self._overdue(attempt):
                attempt.outcome = Outcome.API_ERROR
                attempt.detail = f"transfer still {transfer.status} after the agent hung up"
                record.note("context not ready", attempt.detail)
                return self.fallback_route(record, attempt.detail)
            pause = self.policy.poll_interval
            if time.monotonic() + pause > waited_until or pause >= budget.remaining():
                break
            yield Pause(pause)
        if record.phase is not Phase.HOLDING:
            record.phase = Phase.HOLDING
            record.note("holding", "the context is not ready: the caller hears hold audio")
        return Hold(attempt.number, self.policy.poll_interval, first)

    def without_state(
        self, call_id: str, attempt: int, result: DialResult, why: str
    ) -> Generator[Effect, Any, Step]:
        """A dial result with no usable record (lost, or the store is unreachable): the
        transfer id is ``<call id>-<attempt>``, so GenerativeAgent's answer can still be
        read and followed, AGENT and SYSTEM alike. Nothing is saved: degraded mode, so the
        decision is logged here (the observer of saved records never sees it)."""
        transfer_id = f"{call_id}-{attempt}"
        log.warning(
            "call %s: %s at a dial result; routing from transfer %s itself (degraded mode)",
            call_id,
            why,
            transfer_id,
        )
        step = yield from self._follow_transfer(call_id, transfer_id, result, why)
        kind = step.kind.value if isinstance(step, Route) else "hangup"
        reason = step.reason if isinstance(step, Route) else "the caller hung up"
        decisions.info(
            "call %s routed: %s (degraded mode, nothing saved)",
            call_id,
            kind,
            extra={
                "call_id": call_id,
                "attempt": attempt,
                "transfer_id": transfer_id,
                "route": kind,
                "reason": reason,
            },
        )
        return step

    def _follow_transfer(
        self, call_id: str, transfer_id: str, result: DialResult, why: str
    ) -> Generator[Effect, Any, Step]:
        if result is DialResult.CALLER_HUNG_UP:
            return Hangup()
        if result is not DialResult.AGENT_DISCONNECTED:
            return fallback(f"{why}: dial {result.value}", transfer_id)
        waited_until = time.monotonic() + self.policy.hold_after
        while True:
            try:
                transfer: CallTransfer = yield GetTransfer(transfer_id, self.policy.create_deadline)
            except GenAgentError as exc:
                return fallback(f"{why}; {describe(exc)}", transfer_id)
            if transfer.status == TransferStatus.COMPLETED:
                default = route_for(transfer)
                conversation = transfer.external_conversation_id
                context = RouteContext(call_id, conversation, transfer, default)
                return _with_transfer_id(decide(self.router, context), default)
            if time.monotonic() + self.policy.poll_interval > waited_until:
                return fallback(f"{why}; transfer {transfer.status}", transfer_id)
            yield Pause(self.policy.poll_interval)

    def fallback_route(self, record: CallRecord, reason: str) -> Route:
        """Route the call's current hand-off to the fallback."""
        current, handoff = record.current, record.handoff
        # Only this hand-off's own transfer: an earlier hand-off's was routed already.
        mine = current is not None and (handoff is None or current.handoff == handoff.number)
        last = current.transfer_id if mine and current is not None else None
        return self.route(record, fallback(reason, last), None)

    def route(self, record: CallRecord, default: Route, transfer: CallTransfer | None) -> Route:
        """Decide the route (the deployment's router may change it) and record it."""
        context = RouteContext(record.call_id, record.conversation_id, transfer, default)
        route = _with_transfer_id(decide(self.router, context), default)
        returned = route.kind is not RouteKind.FALLBACK
        record.route = route
        record.phase = Phase.ROUTED
        record.outcome = Outcome.AGENT_RETURNED if returned else Outcome.FALLBACK
        handoff = record.handoff
        if handoff is not None:
            handoff.route, handoff.outcome = route, record.outcome
        # The routing log line and metrics come from the observer of saved records.
        record.note("route", f"{route.kind.value}: {route.reason}")
        return route

    def _overdue(self, attempt: Attempt) -> bool:
        returned = attempt.returned_at or 0.0
        return time.time() - returned >= self.policy.context_wait


def _note_status(record: CallRecord, status: str) -> None:
    """Note a read of the transfer, once per status seen in a row (polls repeat them)."""
    entry = ("context fetched", f"status {status}")
    if not record.timeline or record.timeline[-1][1:] != entry:
        record.note(*entry)


def _with_transfer_id(route: Route, default: Route) -> Route:
    if route.transfer_id is None and default.transfer_id is not None:
        return replace(route, transfer_id=default.transfer_id)
    return route


def describe(exc: Exception) -> str:
    """An API failure in a line for the call's record (no caller data)."""
    return f"{type(exc).__name__}: {exc}"[:300]
