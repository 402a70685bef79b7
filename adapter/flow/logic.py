"""The hand-off's rules, written once, free of I/O.

Each front event is a generator that yields effects (call the API, read or write the
store, pause) and receives their results; a driver runs the effects. The synchronous
driver serves the Flask app, the asyncio driver the AMI worker, so both fronts share
every rule. Failures of an effect (GenAgentError, StoreError) are thrown back into the
generator at the point that asked for it.

Every front event is idempotent: its answer is saved under a key ("start",
"dial-1", ...) and a redelivery gets the same answer without a second API call.
Transfer ids are ``<call id>-<attempt>``, so even two workers racing on one event
create the transfer once (the client turns the 409 into the saved transfer).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

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
    GenAgentError,
    PhoneNumberTransferRequest,
    TransferStatus,
)
from adapter.store import StaleWriteError, Stored, StoreError

log = logging.getLogger("adapter.flow")

_DIAL_OUTCOMES = {
    DialResult.NO_ANSWER: Outcome.NO_ANSWER,
    DialResult.BUSY: Outcome.BUSY,
    DialResult.FAILED: Outcome.FAILED,
}
_SAVE_TRIES = 5


# --- effects -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateTransfer:
    """Create a call transfer; the result is a CallTransfer."""

    request: PhoneNumberTransferRequest
    deadline: float


@dataclass(frozen=True, slots=True)
class GetTransfer:
    """Read a call transfer; the result is a CallTransfer."""

    transfer_id: str
    deadline: float


@dataclass(frozen=True, slots=True)
class Pause:
    """Wait ``seconds``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Load:
    """Read a call's record; the result is a Stored or None."""

    call_id: str


@dataclass(frozen=True, slots=True)
class Save:
    """Write a call's record: create it (``version`` None) or update that version."""

    record: CallRecord
    version: int | None


@dataclass(frozen=True, slots=True)
class Purge:
    """Delete records not written for ``older_than`` seconds; the result is a count."""

    older_than: float


Effect = CreateTransfer | GetTransfer | Pause | Load | Save | Purge
Flow = Generator[Effect, Any, Any]


# --- the rules ---------------------------------------------------------------------------


class FlowRules:
    """What to do on each front event, as generators of effects."""

    def __init__(
        self,
        policy: FlowPolicy | None = None,
        router: Router = default_router,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.policy = policy or FlowPolicy()
        self.router = router
        self._now = now
        self._next_purge = 0.0

    def start(self, call: CallStart) -> Generator[Effect, Any, Step]:
        """A caller is handed over: request a transfer and say what to dial."""
        stored = yield Load(call.call_id)
        if stored is not None:
            return (yield from self._replay(CallRecord.from_json(stored.data), stored.version))
        record = CallRecord(
            call_id=call.call_id,
            conversation_id=call.conversation_id,
            country=call.country,
            task_name=call.task_name,
            input_variables=dict(call.input_variables),
        )
        record.note("handoff")
        step = yield from self._next_attempt(record, Deadline.after(self.policy.event_budget))
        return (yield from self._save(record, None, "start", step))

    def dial_ended(
        self, call_id: str, attempt: int, result: DialResult
    ) -> Generator[Effect, Any, Step]:
        """The front saw the dial of attempt ``attempt`` end with ``result``."""
        key = f"dial-{attempt}"
        stored = yield Load(call_id)
        if stored is None:
            log.warning("dial result for unknown call %s: sending it to the fallback", call_id)
            return fallback("no state for this call")
        record = CallRecord.from_json(stored.data)
        if key in record.steps or record.ended:
            return _answered(record, key)
        current = record.current
        if current is None or current.number != attempt or current.outcome is not None:
            log.warning("call %s: result for attempt %d is not the current one", call_id, attempt)
            return _answered(record, key)
        record.note("dial ended", f"attempt {attempt}: {result.value}")
        step = yield from self._after_dial(record, current, result)
        return (yield from self._save(record, stored.version, key, step))

    def call_ended(self, call_id: str, status: str) -> Generator[Effect, Any, None]:
        """The platform says the call is over (any phase, even before the first dial)."""
        for _ in range(_SAVE_TRIES):
            stored: Stored | None = yield Load(call_id)
            if stored is None:
                record = CallRecord(call_id=call_id, conversation_id=call_id, country="")
                _end(record, f"call {status} before the hand-off finished")
            else:
                record = CallRecord.from_json(stored.data)
                if record.ended:
                    break
                _end(record, f"call {status}")
            try:
                yield Save(record, stored.version if stored else None)
                break
            except StaleWriteError:
                continue
        else:
            log.error("call %s: could not record its end", call_id)
        yield from self._purge_now_and_then()

    def _replay(self, record: CallRecord, version: int) -> Generator[Effect, Any, Step]:
        """A hand-off seen again (a redelivered webhook, a resynchronised channel): the same
        answer, unless its number no longer leaves time to ring: an expired number is
        never dialed (ASAPP may have handed it to another caller), a new one is asked for."""
        step = _answered(record, "start")
        attempt = record.current
        if (
            not isinstance(step, Dial)
            or attempt is None
            or attempt.number != step.attempt
            or attempt.outcome is not None
        ):
            return step
        expire_at = datetime.fromisoformat(attempt.expire_at) if attempt.expire_at else None
        timeout = self.policy.dial_timeout_until(expire_at, self._now())
        if timeout is not None:
            return replace(step, timeout=min(step.timeout, timeout))
        attempt.outcome = Outcome.EXPIRED
        attempt.detail = "expired before it was dialed"
        record.note("hand-off replayed", "the number expired: asking for a new one")
        fresh = yield from self._next_attempt(record, Deadline.after(self.policy.event_budget))
        return (yield from self._save(record, version, "start", fresh, replacing=step))

    # --- decisions -------------------------------------------------------------------

    def _after_dial(
        self, record: CallRecord, attempt: Attempt, result: DialResult
    ) -> Generator[Effect, Any, Step]:
        budget = Deadline.after(self.policy.event_budget)
        if result is DialResult.CALLER_HUNG_UP:
            attempt.outcome = Outcome.CALLER_HUNG_UP
            _end(record, "caller hung up during the transfer")
            return Hangup()
        if result is not DialResult.AGENT_DISCONNECTED:
            attempt.outcome = yield from self._dial_failure(attempt, result)
            return (yield from self._next_attempt(record, budget))
        transfer = yield from self._fetch_completed(record, attempt, budget)
        if transfer is None:
            if attempt.outcome is Outcome.EXPIRED:
                return (yield from self._next_attempt(record, budget))
            return self._fallback(record, attempt.detail)
        attempt.outcome = Outcome.AGENT_RETURNED
        return self._route(record, route_for(transfer), transfer)

    def _dial_failure(
        self, attempt: Attempt, result: DialResult
    ) -> Generator[Effect, Any, Outcome]:
        """Name a failed dial precisely: a number that had expired is not a busy line."""
        try:
            transfer = yield GetTransfer(attempt.transfer_id, 1.0)
        except GenAgentError:
            return _DIAL_OUTCOMES[result]
        if transfer.status == TransferStatus.EXPIRED:
            attempt.detail = f"dial {result.value}: the number had expired"
            return Outcome.EXPIRED
        return _DIAL_OUTCOMES[result]

    def _fetch_completed(
        self, record: CallRecord, attempt: Attempt, budget: Deadline
    ) -> Generator[Effect, Any, CallTransfer | None]:
        """Read the transfer until it is COMPLETED; None (with the attempt's outcome set)
        when it never reached GenerativeAgent, the API failed, or it stayed ONGOING."""
        waited_until = time.monotonic() + self.policy.context_wait
        while True:
            deadline = min(budget.remaining(), self.policy.create_deadline)
            try:
                transfer: CallTransfer = yield GetTransfer(attempt.transfer_id, deadline)
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
            yield Pause(pause)

    def _next_attempt(self, record: CallRecord, budget: Deadline) -> Generator[Effect, Any, Step]:
        """Request transfers until one can be dialed, or fall back."""
        while len(record.attempts) < self.policy.max_attempts:
            number = len(record.attempts) + 1
            attempt = Attempt(number=number, transfer_id=f"{record.call_id}-{number}")
            record.attempts.append(attempt)
            record.note("transfer requested", f"attempt {number}")
            try:
                request = PhoneNumberTransferRequest(
                    id=attempt.transfer_id,
                    external_conversation_id=record.conversation_id,
                    country=record.country,
                    task_name=record.task_name,
                    input_variables=record.input_variables,
                )
                deadline = min(budget.remaining(), self.policy.create_deadline)
                transfer: CallTransfer = yield CreateTransfer(request, deadline)
            except GenAgentError as exc:  # InvalidRequestError included
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
        if route.transfer_id is None and default.transfer_id is not None:
            route = replace(route, transfer_id=default.transfer_id)
        record.route = route
        record.phase = Phase.ROUTED
        returned = route.kind is not RouteKind.FALLBACK
        record.outcome = Outcome.AGENT_RETURNED if returned else Outcome.FALLBACK
        record.note("route", f"{route.kind.value}: {route.reason}")
        log.info(
            "call %s routed to %s (%s)", record.call_id, route.kind.value, record.outcome.value
        )
        return route

    # --- persistence -----------------------------------------------------------------

    def _save(
        self,
        record: CallRecord,
        version: int | None,
        key: str,
        step: Step,
        *,
        replacing: Step | None = None,
    ) -> Generator[Effect, Any, Step]:
        """Save ``step`` as the answer to ``key`` (in place of ``replacing``, if given); if
        someone wrote first, their answer to ``key`` or the call's end wins, and an
        unrelated write is built on."""
        previous = step_to_json(replacing) if replacing is not None else None
        record.steps[key] = step_to_json(step)
        for _ in range(_SAVE_TRIES):
            try:
                yield Save(record, version)
                return step
            except StaleWriteError:
                stored: Stored | None = yield Load(record.call_id)
                if stored is None:
                    break
                fresh = CallRecord.from_json(stored.data)
                if fresh.steps.get(key) != previous or fresh.ended:
                    return _answered(fresh, key)
                version = stored.version
        log.error("call %s: could not save the answer to %s", record.call_id, key)
        return step

    def _purge_now_and_then(self) -> Generator[Effect, Any, None]:
        """Forget calls past the retention period, at most every few minutes per process."""
        now = time.monotonic()
        if now < self._next_purge:
            return
        self._next_purge = now + self.policy.purge_every
        try:
            removed = yield Purge(self.policy.retention_hours * 3600)
        except StoreError:
            log.exception("could not purge old call records")
            return
        if removed:
            log.info("purged %d call records older than %g h", removed, self.policy.retention_hours)


def _answered(record: CallRecord, key: str) -> Step:
    saved = record.steps.get(key)
    if saved is not None:
        return step_from_json(saved)
    if record.ended:
        return Hangup()
    return record.route or fallback("out-of-order event for this call")


def _end(record: CallRecord, why: str) -> None:
    current = record.current
    if current is not None and current.outcome is None:
        current.outcome = Outcome.CALLER_HUNG_UP
    if record.outcome is None:
        record.outcome = Outcome.CALLER_HUNG_UP
    record.phase = Phase.ENDED
    record.note("ended", why)


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
