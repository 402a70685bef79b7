"""The platform-neutral transfer flow, one instance per process, state in the store.

Per call: request a transfer -> the front dials it -> the front reports how the dial
ended -> fetch the context -> decide the route. Every front event is idempotent: its
answer is saved under a key ("start", "dial-1", ...) and a redelivery gets the same
answer without a second API call. Transfer ids are ``<call id>-<attempt>``, so even two
workers racing on one webhook create the transfer once (the client turns the 409 into
the saved transfer).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from adapter.flow.model import (
    Attempt,
    CallRecord,
    CallStart,
    Dial,
    DialResult,
    Hangup,
    Outcome,
    Phase,
    Route,
    RouteKind,
    Step,
    step_from_json,
    step_to_json,
)
from adapter.flow.policy import FlowPolicy
from adapter.flow.routing import RouteContext, Router, decide, default_router, fallback, route_for
from adapter.genagent import (
    CallTransfer,
    Deadline,
    GenAgentClient,
    GenAgentError,
    InvalidRequestError,
    PhoneNumberTransferRequest,
    TransferStatus,
)
from adapter.store import CallStore, StaleWriteError, StoreError

log = logging.getLogger("adapter.flow")

_DIAL_OUTCOMES = {
    DialResult.NO_ANSWER: Outcome.NO_ANSWER,
    DialResult.BUSY: Outcome.BUSY,
    DialResult.FAILED: Outcome.FAILED,
}


class TransferFlow:
    """Runs the hand-off for every call of one front (synchronous; thread-safe)."""

    def __init__(
        self,
        client: GenAgentClient,
        store: CallStore,
        policy: FlowPolicy | None = None,
        router: Router = default_router,
        *,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.store = store
        self.policy = policy or FlowPolicy()
        self.router = router
        self._sleep = sleep
        self._now = now
        self._next_purge = 0.0

    # --- front events ------------------------------------------------------------------

    def start(self, call: CallStart) -> Step:
        """A caller is handed over: request a transfer and say what to dial."""
        existing = self.load(call.call_id)
        if existing is not None:
            return self._answered(existing, "start")
        record = CallRecord(
            call_id=call.call_id,
            conversation_id=call.conversation_id,
            country=call.country,
            task_name=call.task_name,
            input_variables=dict(call.input_variables),
        )
        record.note("handoff")
        step = self._next_attempt(record, Deadline.after(self.policy.event_budget))
        record.steps["start"] = step_to_json(step)
        try:
            self.store.create(call.call_id, record.to_json(), active=not record.ended)
        except StaleWriteError:  # a duplicate delivery, or the caller hung up meanwhile
            return self._answered(self._must_load(call.call_id), "start")
        return step

    def dial_ended(self, call_id: str, attempt: int, result: DialResult) -> Step:
        """The front saw the dial of attempt ``attempt`` end with ``result``."""
        key = f"dial-{attempt}"
        stored = self.store.get(call_id)
        if stored is None:
            log.warning("dial result for unknown call %s: sending it to the fallback", call_id)
            return fallback("no state for this call")
        record = CallRecord.from_json(stored.data)
        if key in record.steps or record.ended:
            return self._answered(record, key)
        current = record.current
        if current is None or current.number != attempt or current.outcome is not None:
            log.warning("call %s: result for attempt %d is not the current one", call_id, attempt)
            return self._answered(record, key)
        record.note("dial ended", f"attempt {attempt}: {result.value}")
        step = self._after_dial(record, current, result)
        record.steps[key] = step_to_json(step)
        return self._save(record, stored.version, key, step)

    def call_ended(self, call_id: str, status: str) -> None:
        """The platform says the call is over (any phase, even before the first dial)."""
        self._record_end(call_id, status)
        self._purge_now_and_then()

    def _purge_now_and_then(self) -> None:
        """Forget calls past the retention period, at most every few minutes per process."""
        now = time.monotonic()
        if now < self._next_purge:
            return
        self._next_purge = now + self.policy.purge_every
        try:
            removed = self.store.purge(self.policy.retention_hours * 3600)
        except StoreError:
            log.exception("could not purge old call records")
            return
        if removed:
            log.info("purged %d call records older than %g h", removed, self.policy.retention_hours)

    def _record_end(self, call_id: str, status: str) -> None:
        for _ in range(5):
            stored = self.store.get(call_id)
            if stored is None:
                record = CallRecord(call_id=call_id, conversation_id=call_id, country="")
                self._end(record, f"call {status} before the hand-off finished")
                try:
                    self.store.create(call_id, record.to_json(), active=False)
                    return
                except StaleWriteError:
                    continue
            record = CallRecord.from_json(stored.data)
            if record.ended:
                return
            self._end(record, f"call {status}")
            try:
                self.store.update(
                    call_id, record.to_json(), expected_version=stored.version, active=False
                )
                return
            except StaleWriteError:
                continue
        log.error("call %s: could not record its end after 5 tries", call_id)

    def load(self, call_id: str) -> CallRecord | None:
        """The call's record, if the store has one."""
        stored = self.store.get(call_id)
        return CallRecord.from_json(stored.data) if stored else None

    # --- decisions -----------------------------------------------------------------------

    def _after_dial(self, record: CallRecord, attempt: Attempt, result: DialResult) -> Step:
        budget = Deadline.after(self.policy.event_budget)
        if result is DialResult.CALLER_HUNG_UP:
            attempt.outcome = Outcome.CALLER_HUNG_UP
            self._end(record, "caller hung up during the transfer")
            return Hangup()
        if result is not DialResult.AGENT_DISCONNECTED:
            attempt.outcome = self._dial_failure(attempt, result)
            return self._next_attempt(record, budget)
        transfer = self._fetch_completed(record, attempt, budget)
        if transfer is None:
            if attempt.outcome is Outcome.EXPIRED:
                return self._next_attempt(record, budget)
            return self._fallback(record, attempt.detail)
        attempt.outcome = Outcome.AGENT_RETURNED
        route = route_for(transfer)
        return self._route(record, route, transfer)

    def _dial_failure(self, attempt: Attempt, result: DialResult) -> Outcome:
        """Name a failed dial precisely: a number that had expired is not a busy line."""
        try:
            transfer = self.client.get_transfer(attempt.transfer_id, deadline=1.0)
        except GenAgentError:
            return _DIAL_OUTCOMES[result]
        if transfer.status == TransferStatus.EXPIRED:
            attempt.detail = f"dial {result.value}: the number had expired"
            return Outcome.EXPIRED
        return _DIAL_OUTCOMES[result]

    def _fetch_completed(
        self, record: CallRecord, attempt: Attempt, budget: Deadline
    ) -> CallTransfer | None:
        """Read the transfer until it is COMPLETED; None (with the attempt's outcome set)
        when it never reached GenerativeAgent, the API failed, or it stayed ONGOING."""
        waited_until = time.monotonic() + self.policy.context_wait
        while True:
            try:
                transfer = self.client.get_transfer(
                    attempt.transfer_id,
                    deadline=min(budget.remaining(), self.policy.create_deadline),
                )
            except GenAgentError as exc:
                attempt.outcome, attempt.detail = Outcome.API_ERROR, _describe(exc)
                record.note("context fetch failed", attempt.detail)
                return None
            record.note("context fetched", f"status {transfer.status}")
            if transfer.status == TransferStatus.COMPLETED:
                return transfer
            if transfer.status in (TransferStatus.ACTIVE, TransferStatus.EXPIRED):
                attempt.outcome = Outcome.EXPIRED
                attempt.detail = f"the number never reached GenerativeAgent ({transfer.status})"
                return None
            pause = self.policy.poll_interval
            if time.monotonic() + pause > waited_until or pause >= budget.remaining():
                attempt.outcome = Outcome.API_ERROR
                attempt.detail = f"transfer still {transfer.status} after the agent hung up"
                record.note("context not ready", attempt.detail)
                return None
            self._sleep(pause)

    def _next_attempt(self, record: CallRecord, budget: Deadline) -> Step:
        """Request transfers until one can be dialed, or fall back."""
        while len(record.attempts) < self.policy.max_attempts:
            number = len(record.attempts) + 1
            attempt = Attempt(number=number, transfer_id=f"{record.call_id}-{number}")
            record.attempts.append(attempt)
            record.note("transfer requested", f"attempt {number}")
            try:
                transfer = self.client.create_transfer(
                    PhoneNumberTransferRequest(
                        id=attempt.transfer_id,
                        external_conversation_id=record.conversation_id,
                        country=record.country,
                        task_name=record.task_name,
                        input_variables=record.input_variables,
                    ),
                    deadline=min(budget.remaining(), self.policy.create_deadline),
                )
            except (GenAgentError, InvalidRequestError) as exc:
                attempt.outcome, attempt.detail = Outcome.API_ERROR, _describe(exc)
                record.note("transfer request failed", attempt.detail)
                return self._fallback(record, attempt.detail)
            attempt.transfer_number = transfer.transfer_number
            attempt.expire_at = transfer.expire_at.isoformat() if transfer.expire_at else None
            timeout = self.policy.dial_timeout_until(transfer.expire_at, self._now())
            if transfer.status != TransferStatus.ACTIVE or timeout is None:
                attempt.outcome = Outcome.EXPIRED
                attempt.detail = f"transfer {transfer.status}, not dialable"
                continue
            record.phase = Phase.DIALING
            record.note("dial", f"attempt {number}, {timeout} s")
            assert transfer.transfer_number is not None  # checked by the client when ACTIVE
            return Dial(number, attempt.transfer_id, transfer.transfer_number, timeout)
        return self._fallback(record, f"no transfer was reached in {len(record.attempts)} attempts")

    def _fallback(self, record: CallRecord, reason: str) -> Route:
        last = record.current.transfer_id if record.current else None
        return self._route(record, fallback(reason, last), None)

    def _route(self, record: CallRecord, default: Route, transfer: CallTransfer | None) -> Route:
        route = decide(
            self.router, RouteContext(record.call_id, record.conversation_id, transfer, default)
        )
        record.route = route
        record.phase = Phase.ROUTED
        returned = route.kind is not RouteKind.FALLBACK
        record.outcome = Outcome.AGENT_RETURNED if returned else Outcome.FALLBACK
        record.note("route", f"{route.kind.value}: {route.reason}")
        log.info(
            "call %s routed to %s (%s)", record.call_id, route.kind.value, record.outcome.value
        )
        return route

    def _end(self, record: CallRecord, why: str) -> None:
        current = record.current
        if current is not None and current.outcome is None:
            current.outcome = Outcome.CALLER_HUNG_UP
        if record.outcome is None:
            record.outcome = Outcome.CALLER_HUNG_UP
        record.phase = Phase.ENDED
        record.note("ended", why)

    # --- persistence ---------------------------------------------------------------------

    def _save(self, record: CallRecord, version: int, key: str, step: Step) -> Step:
        for _ in range(5):
            try:
                self.store.update(
                    record.call_id,
                    record.to_json(),
                    expected_version=version,
                    active=not record.ended,
                )
                return step
            except StaleWriteError:
                # Someone wrote first: a duplicate delivery (take its answer), the call's
                # end (the caller is gone), or an unrelated write (ours still stands).
                stored = self.store.get(record.call_id)
                if stored is None:
                    break
                fresh = CallRecord.from_json(stored.data)
                if key in fresh.steps or fresh.ended:
                    return self._answered(fresh, key)
                version = stored.version
        log.error("call %s: could not save the answer to %s", record.call_id, key)
        return step

    def _answered(self, record: CallRecord, key: str) -> Step:
        saved = record.steps.get(key)
        if saved is not None:
            return step_from_json(saved)
        if record.ended:
            return Hangup()
        return record.route or fallback("out-of-order event for this call")

    def _must_load(self, call_id: str) -> CallRecord:
        record = self.load(call_id)
        if record is None:
            raise RuntimeError(f"call {call_id} vanished from the store")
        return record


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
