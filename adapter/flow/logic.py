"""The hand-off's rules, written once, free of I/O.

Each front event is a generator that yields effects (call the API, read or write the
store, pause) and receives their results; a driver runs the effects. The synchronous
driver serves the Flask app, the asyncio driver the AMI worker, so both fronts share
every rule. Failures of an effect (GenAgentError, StoreError) are thrown back into the
generator at the point that asked for it.

A call may be handed over any number of times; each hand-off has its own attempts and
ends in a route. Every front event is idempotent: its answer is saved under a key
("start", "start-2", "dial-1", "context-1", ...) and a redelivery gets the same answer
without a second API call. Transfer ids are ``<call id>-<attempt>`` with attempts
numbered across the call, so even two workers racing on one event create the transfer
once (the client turns the 409 into the saved transfer).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from datetime import UTC, datetime
from typing import Any

from adapter.flow.answers import after_return, answered
from adapter.flow.context import describe
from adapter.flow.effects import CreateTransfer, Effect, GetTransfer, Load, Pause, Purge, Save
from adapter.flow.model import (
    Attempt,
    CallRecord,
    CallStart,
    Dial,
    DialResult,
    Handoff,
    Hangup,
    Hold,
    Outcome,
    Phase,
    SipReturn,
    Step,
    TransferMode,
    start_key,
    step_from_json,
    step_to_json,
)
from adapter.flow.policy import FlowPolicy
from adapter.flow.routing import Router, default_router
from adapter.flow.sip_returns import SipReturns
from adapter.flow.sip_steps import for_leg, sip_dial, sip_request
from adapter.genagent import (
    Deadline,
    GenAgentError,
    PhoneNumberTransferRequest,
    TransferRequest,
    TransferStatus,
)
from adapter.genagent.values import dialable_number
from adapter.store import StaleWriteError, Stored, StoreError

log = logging.getLogger("adapter.flow")

_DIAL_OUTCOMES = {
    DialResult.NO_ANSWER: Outcome.NO_ANSWER,
    DialResult.BUSY: Outcome.BUSY,
    DialResult.FAILED: Outcome.FAILED,
}
_SAVE_TRIES = 5


class FlowRules(SipReturns):
    """What to do on each front event, as generators of effects."""

    def __init__(
        self,
        policy: FlowPolicy | None = None,
        router: Router = default_router,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(policy or FlowPolicy(), router)
        self._now = now
        self._next_purge = 0.0

    # --- front events ------------------------------------------------------------------

    def start(self, call: CallStart) -> Generator[Effect, Any, Step]:
        """A caller is handed over: a new hand-off requests a transfer and says what to
        dial; a redelivered one gets the answer it got before, with no API call."""
        stored = yield Load(call.call_id, self.policy.create_deadline)
        if stored is None:
            record = CallRecord(
                call_id=call.call_id,
                conversation_id=call.conversation_id or call.call_id,
                country=call.country,
            )
            return (yield from self._new_handoff(record, None, call))
        record = CallRecord.from_json(stored.data)
        if record.ended:
            return Hangup()
        seen = _redelivered(record, call.token)
        if seen is not None:
            return (yield from self._replay(record, stored.version, seen))
        return (yield from self._new_handoff(record, stored.version, call))

    def dial_ended(
        self, call_id: str, attempt: int, result: DialResult
    ) -> Generator[Effect, Any, Step]:
        """The front saw the dial of attempt ``attempt`` end with ``result``."""
        key = f"dial-{attempt}"
        # Any ending but the caller's hang-up reads the transfer next.
        api = None if result is DialResult.CALLER_HUNG_UP else self.policy.create_deadline
        try:
            stored = yield Load(call_id, api)
        except StoreError as exc:
            why = f"the call store is unreachable ({type(exc).__name__})"
            return (yield from self.without_state(call_id, attempt, result, why))
        if stored is None:
            return (yield from self.without_state(call_id, attempt, result, "no state"))
        record = CallRecord.from_json(stored.data)
        if key in record.steps or record.ended:
            return answered(record, key)
        current = record.current
        if current is not None and current.number == attempt and current.returned_by:
            return after_return(record, current)
        if (
            current is None
            or current.number != attempt
            or current.outcome is not None
            or record.phase is not Phase.DIALING
        ):
            log.warning("call %s: result for attempt %d is not the current one", call_id, attempt)
            return answered(record, key)
        record.note("dial ended", f"attempt {attempt}: {result.value}")
        step = yield from self._after_dial(record, current, result)
        return (yield from self._save(record, stored.version, key, step))

    def context_poll(self, call_id: str, attempt: int) -> Generator[Effect, Any, Step]:
        """The caller held (a Hold step): read the context of ``attempt`` again."""
        key = f"context-{attempt}"
        try:
            stored = yield Load(call_id)
        except StoreError as exc:
            why = f"the call store is unreachable ({type(exc).__name__})"
            stored, missing = None, why
        else:
            missing = "no state"
        if stored is None:
            returned = DialResult.AGENT_DISCONNECTED
            return (yield from self.without_state(call_id, attempt, returned, missing))
        record = CallRecord.from_json(stored.data)
        if key in record.steps or record.ended:
            return answered(record, key)
        current = record.current
        if record.phase is not Phase.HOLDING or current is None or current.number != attempt:
            return answered(record, key)  # stale or out of order: where the call is now
        # Polls come back as fast as the hold audio ends (a short clip, or none heard at
        # all): keep them at least a poll interval apart, whatever the audio.
        yield Pause(self.policy.poll_interval)
        step = yield from self.read_context(record, current, self._budget(), first=False)
        if isinstance(step, Hold):
            return for_leg(record, current, step)  # nothing decided yet: nothing to save
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

    # --- hand-offs ---------------------------------------------------------------------

    def _new_handoff(
        self, record: CallRecord, version: int | None, call: CallStart
    ) -> Generator[Effect, Any, Step]:
        previous = record.handoff
        number = len(record.handoffs) + 1
        conversation = call.conversation_id or (
            previous.conversation_id if previous else call.call_id
        )
        handoff = Handoff(number, call.token, conversation, call.task_name)
        handoff.input_variables = dict(call.input_variables)
        handoff.mode = call.mode or self.policy.sip.mode
        handoff.customer_id = call.customer_id
        record.handoffs.append(handoff)
        record.conversation_id = conversation
        record.country = call.country
        record.task_name = call.task_name
        record.input_variables = dict(call.input_variables)
        record.route, record.outcome, record.phase = None, None, Phase.DIALING
        resumed = ", resuming the conversation" if previous else ""
        by = "" if handoff.mode is TransferMode.PHONE_NUMBER else f" by {handoff.mode.value}"
        record.note("handoff", f"hand-off {number}{resumed}{by}")
        if number > self.policy.max_handoffs:
            too_many = f"hand-off {number}: more than {self.policy.max_handoffs} hand-offs"
            step: Step = self.fallback_route(record, too_many)
        else:
            step = yield from self.next_attempt(record, self._budget())
        return (yield from self._save(record, version, start_key(number), step))

    def _replay(
        self, record: CallRecord, version: int, handoff: Handoff
    ) -> Generator[Effect, Any, Step]:
        """A hand-off seen again (a redelivered webhook, a resynchronised channel): where
        it stands, never a number of an earlier hand-off. A number that no longer leaves
        time to ring is never dialed (ASAPP may have handed it to another caller): a new
        one is asked for."""
        key = start_key(handoff.number)
        if handoff is not record.handoff or handoff.route is not None:
            return handoff.route or answered(record, key)
        if record.phase is Phase.HOLDING and record.current is not None:
            return Hold(record.current.number, self.policy.poll_interval, first=False)
        attempt = record.current
        if attempt is None or attempt.outcome is not None or attempt.handoff != handoff.number:
            return answered(record, key)
        if handoff.mode is not TransferMode.PHONE_NUMBER:
            dial = sip_dial(record, attempt, self.policy.sip, self.policy.dial_timeout)
            return dial or answered(record, key)
        number = dialable_number(attempt.transfer_number)
        expire_at = datetime.fromisoformat(attempt.expire_at) if attempt.expire_at else None
        timeout = self.policy.dial_timeout_until(expire_at, self._now())
        if number is not None and timeout is not None:
            return Dial(attempt.number, attempt.transfer_id, number, timeout)
        attempt.outcome = Outcome.EXPIRED
        attempt.detail = "expired before it was dialed"
        record.note("hand-off replayed", "the number expired: asking for a new one")
        fresh = yield from self.next_attempt(record, self._budget())
        replacing = step_from_json(record.steps[key]) if key in record.steps else None
        return (yield from self._save(record, version, key, fresh, replacing=replacing))

    # --- decisions -------------------------------------------------------------------

    def _after_dial(
        self, record: CallRecord, attempt: Attempt, result: DialResult
    ) -> Generator[Effect, Any, Step]:
        budget = self._budget()
        if result is DialResult.CALLER_HUNG_UP:
            attempt.outcome = Outcome.CALLER_HUNG_UP
            _end(record, "caller hung up during the transfer")
            return Hangup()
        if result is not DialResult.AGENT_DISCONNECTED:
            attempt.outcome = yield from self._dial_failure(record, attempt, result)
            return (yield from self.next_attempt(record, budget))
        attempt.returned_at = time.time()
        if record.mode is not TransferMode.PHONE_NUMBER:
            attempt.returned_by = SipReturn.BYE
            record.note("returned", f"attempt {attempt.number} by BYE")
        if record.mode is TransferMode.SIP_HEADERS:
            attempt.outcome = Outcome.AGENT_RETURNED
            attempt.detail = "GenerativeAgent hung up: sip-headers mode has no context to read"
            return self.fallback_route(record, attempt.detail)
        return (yield from self.read_context(record, attempt, budget, first=True))

    def _dial_failure(
        self, record: CallRecord, attempt: Attempt, result: DialResult
    ) -> Generator[Effect, Any, Outcome]:
        """Name a failed dial precisely: a number that had expired is not a busy line."""
        if record.mode is TransferMode.SIP_HEADERS:
            return _DIAL_OUTCOMES[result]  # no transfer to read
        try:
            transfer = yield GetTransfer(attempt.transfer_id, 1.0)
        except GenAgentError:
            return _DIAL_OUTCOMES[result]
        if transfer.status == TransferStatus.EXPIRED:
            attempt.detail = f"dial {result.value}: the number had expired"
            return Outcome.EXPIRED
        return _DIAL_OUTCOMES[result]

    def next_attempt(self, record: CallRecord, budget: Deadline) -> Generator[Effect, Any, Step]:
        """Request transfers until one can be dialed, or fall back; each hand-off has its
        own budget of attempts."""
        handoff = record.handoff.number if record.handoff else 1
        mode = record.mode
        if mode is not TransferMode.PHONE_NUMBER and self.policy.sip.target(mode) is None:
            return self.fallback_route(record, f"transfer mode {mode.value} is not configured")
        while len(record.attempts_of(handoff)) < self.policy.max_attempts:
            number = len(record.attempts) + 1
            attempt = Attempt(number, f"{record.call_id}-{number}", handoff=handoff)
            record.attempts.append(attempt)
            if mode is TransferMode.SIP_HEADERS:  # no API call: the context goes in headers
                return self._dial_sip(record, attempt, self.policy.dial_timeout)
            record.note("transfer requested", f"attempt {number}")
            try:
                request = self._request(record, attempt)
                deadline = min(budget.remaining(), self.policy.create_deadline)
                transfer = yield CreateTransfer(request, deadline)
            except GenAgentError as exc:  # InvalidRequestError included
                attempt.outcome, attempt.detail = Outcome.API_ERROR, describe(exc)
                record.note("transfer request failed", attempt.detail)
                return self.fallback_route(record, attempt.detail)
            attempt.transfer_number = transfer.transfer_number
            attempt.expire_at = transfer.expire_at.isoformat() if transfer.expire_at else None
            timeout = self.policy.dial_timeout_until(transfer.expire_at, self._now())
            if transfer.status != TransferStatus.ACTIVE or timeout is None:
                attempt.outcome = Outcome.EXPIRED
                attempt.detail = f"transfer {transfer.status}, not dialable"
                continue
            if mode is TransferMode.SIP_API:
                return self._dial_sip(record, attempt, timeout)
            dialable = dialable_number(transfer.transfer_number)
            if dialable is None:
                attempt.outcome = Outcome.API_ERROR
                attempt.detail = "the transfer number is not a plausible E.164 number"
                record.note("transfer unusable", attempt.detail)
                continue
            record.phase = Phase.DIALING
            record.note("dial", f"attempt {number}, {timeout} s")
            return Dial(number, attempt.transfer_id, dialable, timeout)
        tried = len(record.attempts_of(handoff))
        return self.fallback_route(record, f"no transfer was reached in {tried} attempts")

    def _request(self, record: CallRecord, attempt: Attempt) -> TransferRequest:
        if record.mode is TransferMode.SIP_API:
            return sip_request(record, attempt, self.policy.sip)
        return PhoneNumberTransferRequest(
            id=attempt.transfer_id,
            external_conversation_id=record.conversation_id,
            country=record.country,
            task_name=record.task_name,
            input_variables=record.input_variables,
        )

    def _dial_sip(self, record: CallRecord, attempt: Attempt, timeout: int) -> Step:
        dial = sip_dial(record, attempt, self.policy.sip, timeout)
        if dial is None:  # checked before the first attempt; kept for the type checker
            return self.fallback_route(record, f"transfer mode {record.mode} is not configured")
        record.phase = Phase.DIALING
        record.note("dial", f"attempt {attempt.number} by SIP ({record.mode.value}), {timeout} s")
        return dial

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
                    return answered(fresh, key)
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

    def _budget(self) -> Deadline:
        return Deadline.after(self.policy.event_budget)


def _redelivered(record: CallRecord, token: str | None) -> Handoff | None:
    """The hand-off this start event repeats, or None if it is a new hand-off.

    The token decides where the front gives one; otherwise the call's phase: while a
    hand-off is still in flight (no route yet) a start is a redelivery of it.
    """
    if token is not None:
        for handoff in record.handoffs:
            if handoff.token == token:
                return handoff
    current = record.handoff
    if current is None or current.route is not None:
        return None
    if record.phase in (Phase.DIALING, Phase.HOLDING):
        if token is not None and current.token is not None:
            log.warning(
                "call %s: a new hand-off while hand-off %d is in flight: answering that one",
                record.call_id,
                current.number,
            )
        return current
    return None


def _end(record: CallRecord, why: str) -> None:
    current = record.current
    if current is not None and current.outcome is None:
        current.outcome = Outcome.CALLER_HUNG_UP
    if record.outcome is None:
        record.outcome = Outcome.CALLER_HUNG_UP
    handoff = record.handoff
    if handoff is not None and handoff.outcome is None:
        handoff.outcome = Outcome.CALLER_HUNG_UP
    record.phase = Phase.ENDED
    record.note("ended", why)
