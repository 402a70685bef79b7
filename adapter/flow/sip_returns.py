"""GenerativeAgent giving a SIP hand-off back by REFER or by INVITE.

A BYE is the front's ordinary dial-ended event; these two are events of their own. In
sip-headers mode the route comes from the X-GA-* parameters, with no API call; in sip-api
mode the transfer is fetched, as after a BYE. Answers are saved under ``refer-<n>`` and
``invite-<n>``, so a redelivered webhook gets the same one.
"""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from collections.abc import Generator, Sequence
from typing import Any

from adapter.flow.answers import answered
from adapter.flow.context import ContextReads
from adapter.flow.effects import Effect, Load
from adapter.flow.model import (
    Attempt,
    CallRecord,
    DialResult,
    Hangup,
    Hold,
    Outcome,
    Phase,
    SipReturn,
    Step,
    TransferMode,
)
from adapter.flow.routing import fallback
from adapter.flow.sip_steps import for_leg, route_from_ga
from adapter.genagent import Deadline
from adapter.sip.refer import GaReturn, ga_return, parse_refer_to
from adapter.sip.return_uri import split_transfer_id, transfer_id_in
from adapter.store import Stored, StoreError

log = logging.getLogger("adapter.flow")


class SipReturns(ContextReads):
    """The REFER and INVITE events of the flow's rules."""

    @abstractmethod
    def _save(
        self,
        record: CallRecord,
        version: int | None,
        key: str,
        step: Step,
        *,
        replacing: Step | None = None,
    ) -> Generator[Effect, Any, Step]:
        """Save ``step`` as the answer to ``key`` (see FlowRules)."""

    @abstractmethod
    def _budget(self) -> Deadline:
        """The API budget of one front event."""

    def sip_refer(self, call_id: str, refer_to: str) -> Generator[Effect, Any, Step]:
        """GenerativeAgent referred the caller of a SIP hand-off to ``refer_to`` (the
        Refer-To, raw). sip-headers: route from its X-GA-* parameters, no API call;
        sip-api: read the transfer's context and route by it."""
        target = parse_refer_to(refer_to)
        ga = ga_return(target.headers, truncated=target.truncated)
        stored, why = yield from self._load(call_id)
        if stored is None:
            named = transfer_id_in(refer_to)
            parts = split_transfer_id(named) if named else None
            attempt = parts[1] if parts is not None and parts[0] == call_id else None
            return (yield from self._return_without_state(call_id, attempt, ga, why))
        record = CallRecord.from_json(stored.data)
        current = record.current
        key = f"refer-{current.number if current else 0}"
        if key in record.steps or record.ended:
            return answered(record, key)
        if record.phase is Phase.HOLDING and current is not None:
            # Its BYE came first and the context is being read: the same wait, no new route.
            return Hold(current.number, self.policy.poll_interval, first=False)
        if current is None or current.outcome is not None or record.phase is not Phase.DIALING:
            log.warning("call %s: a REFER for no pending SIP attempt", call_id)
            return answered(record, key)
        step = yield from self._returned(record, current, SipReturn.REFER, ga)
        return (yield from self._save(record, stored.version, key, step))

    def sip_invite(
        self,
        call_id: str,
        attempt: int | None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> Generator[Effect, Any, Step]:
        """GenerativeAgent called the return URI: the answer is for that new leg (the
        caller, through GenerativeAgent). ``attempt`` comes from the returnURI (None: the
        call's current one); ``headers`` are the INVITE's X-GA-* headers, if any."""
        ga = ga_return(headers)
        stored, why = yield from self._load(call_id)
        if stored is None:
            return (yield from self._return_without_state(call_id, attempt, ga, why))
        record = CallRecord.from_json(stored.data)
        current = record.current
        number = attempt or (current.number if current else 0)
        key = f"invite-{number}"
        if key in record.steps:
            return answered(record, key)
        if record.ended:
            return Hangup()
        if (
            current is None
            or current.number != number
            or current.outcome is not None
            or record.phase is not Phase.DIALING
        ):
            log.warning("call %s: an INVITE return for no pending SIP attempt", call_id)
            return answered(record, key)
        step = yield from self._returned(record, current, SipReturn.INVITE, ga)
        return (yield from self._save(record, stored.version, key, step))

    def _returned(
        self, record: CallRecord, attempt: Attempt, how: SipReturn, ga: GaReturn
    ) -> Generator[Effect, Any, Step]:
        """A SIP attempt came back by REFER or INVITE: its route, or a Hold."""
        attempt.returned_by, attempt.returned_at = how, time.time()
        record.note("returned", f"attempt {attempt.number} by {how.value}")
        if record.mode is TransferMode.SIP_HEADERS:
            attempt.outcome = Outcome.AGENT_RETURNED
            if ga.problems:
                record.note("X-GA parameters", "; ".join(ga.problems)[:300])
            return self.route(record, route_from_ga(ga, attempt.transfer_id), None)
        step = yield from self.read_context(record, attempt, self._budget(), first=True)
        return for_leg(record, attempt, step)

    def _load(self, call_id: str) -> Generator[Effect, Any, tuple[Stored | None, str]]:
        """The call's record, or None and why there is none (no state, or no store)."""
        try:
            stored: Stored | None = yield Load(call_id)
        except StoreError as exc:
            return None, f"the call store is unreachable ({type(exc).__name__})"
        return stored, "no state"

    def _return_without_state(
        self, call_id: str, attempt: int | None, ga: GaReturn, why: str
    ) -> Generator[Effect, Any, Step]:
        """A REFER or INVITE with no usable record: its X-GA-* parameters if it has
        them, else the transfer its returnURI names, else the fallback (degraded mode)."""
        if ga.found:
            log.warning("call %s: %s at a SIP return; routing from its parameters", call_id, why)
            return route_from_ga(ga, None)
        if attempt is None:
            return fallback(f"{why} at a SIP return")
        returned = DialResult.AGENT_DISCONNECTED
        return (yield from self.without_state(call_id, attempt, returned, why))
