"""What the transfer flow knows about a call, and what it tells a front to do.

Records are plain data that round-trip through JSON, so any store can keep them and
any process can pick a call up where another left it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from adapter.flow.steps import (
    Dial,
    Hangup,
    Hold,
    Route,
    RouteKind,
    SipDial,
    Step,
    step_from_json,
    step_to_json,
)
from adapter.sip.settings import TransferMode

__all__ = [
    "Attempt",
    "CallRecord",
    "CallStart",
    "Dial",
    "DialResult",
    "Handoff",
    "Hangup",
    "Hold",
    "Outcome",
    "Phase",
    "Route",
    "RouteKind",
    "SipDial",
    "SipReturn",
    "Step",
    "TransferMode",
    "start_key",
    "step_from_json",
    "step_to_json",
]


class Phase(StrEnum):
    """Where a call is in the hand-off."""

    DIALING = "dialing"  # a transfer number was handed to the front to dial
    HOLDING = "holding"  # the agent hung up; the caller holds while its context is read
    ROUTED = "routed"  # the caller was sent on: agent, IVR or fallback
    ENDED = "ended"  # the caller is gone


class Outcome(StrEnum):
    """How one attempt, or a whole call, ended. Kept distinct on purpose: each means
    something different to whoever reads the call records."""

    AGENT_RETURNED = "agent-returned"
    CALLER_HUNG_UP = "caller-hung-up"
    NO_ANSWER = "no-answer"
    BUSY = "busy"
    FAILED = "failed"
    EXPIRED = "expired"
    API_ERROR = "api-error"
    FALLBACK = "fallback"


class SipReturn(StrEnum):
    """How GenerativeAgent gave a SIP hand-off back."""

    BYE = "BYE"  # it hung up: the dial ended
    REFER = "REFER"  # it referred the caller to a Refer-To
    INVITE = "INVITE"  # it called the return URI (and stays on the call)


class DialResult(StrEnum):
    """How a front saw the dial of a transfer number end."""

    AGENT_DISCONNECTED = "agent-disconnected"  # bridged, then the far side hung up
    CALLER_HUNG_UP = "caller-hung-up"
    NO_ANSWER = "no-answer"
    BUSY = "busy"
    FAILED = "failed"  # unreachable, congestion, channel unavailable


@dataclass(frozen=True, slots=True)
class CallStart:
    """What a front knows when a caller is handed over.

    ``conversation_id`` None means the call's own conversation: the one its earlier
    hand-offs used (so GenerativeAgent resumes it), or the call id for the first.
    ``token`` names this hand-off event where the platform gives it a stable name (Twilio's
    I-Twilio-Idempotency-Token, the dialplan's hand-off counter): the same token is a
    redelivery, another token after a route is a new hand-off.
    ``mode`` overrides the deployment's TRANSFER_MODE for this hand-off; ``customer_id``
    is sent as X-GA-customerId in sip-headers mode.
    """

    call_id: str
    conversation_id: str | None
    country: str
    task_name: str | None = None
    input_variables: dict[str, str] = field(default_factory=dict)
    token: str | None = None
    mode: TransferMode | None = None
    customer_id: str | None = None


@dataclass(slots=True)
class Attempt:
    """One call transfer requested for the call, and how its dial ended."""

    number: int
    transfer_id: str
    transfer_number: str | None = None
    expire_at: str | None = None  # ISO 8601, as the API gave it
    outcome: Outcome | None = None
    detail: str = ""
    handoff: int = 1  # the hand-off this attempt belongs to
    returned_at: float | None = None  # when GenerativeAgent hung up (epoch seconds)
    returned_by: SipReturn | None = None  # how a SIP attempt came back

    def to_json(self) -> dict[str, Any]:
        """Plain data for the store."""
        return {
            "number": self.number,
            "transferId": self.transfer_id,
            "transferNumber": self.transfer_number,
            "expireAt": self.expire_at,
            "outcome": self.outcome.value if self.outcome else None,
            "detail": self.detail,
            "handoff": self.handoff,
            "returnedAt": self.returned_at,
            "returnedBy": self.returned_by.value if self.returned_by else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attempt:
        """Inverse of to_json."""
        outcome = data.get("outcome")
        return cls(
            number=data["number"],
            transfer_id=data["transferId"],
            transfer_number=data.get("transferNumber"),
            expire_at=data.get("expireAt"),
            outcome=Outcome(outcome) if outcome else None,
            detail=data.get("detail", ""),
            handoff=int(data.get("handoff") or 1),
            returned_at=data.get("returnedAt"),
            returned_by=SipReturn(data["returnedBy"]) if data.get("returnedBy") else None,
        )


@dataclass(slots=True)
class Handoff:
    """One time the caller was handed to GenerativeAgent, and where it ended."""

    number: int
    token: str | None
    conversation_id: str
    task_name: str | None = None
    input_variables: dict[str, str] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    outcome: Outcome | None = None
    route: Route | None = None
    mode: TransferMode = TransferMode.PHONE_NUMBER
    customer_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain data for the store."""
        return {
            "number": self.number,
            "token": self.token,
            "mode": self.mode.value,
            "customerId": self.customer_id,
            "conversationId": self.conversation_id,
            "taskName": self.task_name,
            "inputVariables": dict(self.input_variables),
            "startedAt": self.started_at,
            "outcome": self.outcome.value if self.outcome else None,
            "route": self.route.to_json() if self.route else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Handoff:
        """Inverse of to_json."""
        outcome = data.get("outcome")
        route = data.get("route")
        return cls(
            number=int(data["number"]),
            token=data.get("token"),
            conversation_id=data["conversationId"],
            task_name=data.get("taskName"),
            input_variables=dict(data.get("inputVariables") or {}),
            started_at=float(data.get("startedAt") or 0.0),
            outcome=Outcome(outcome) if outcome else None,
            route=Route.from_json(route) if route else None,
            mode=TransferMode.parse(data.get("mode")) or TransferMode.PHONE_NUMBER,
            customer_id=data.get("customerId"),
        )


def start_key(handoff: int) -> str:
    """The key a hand-off's first answer is saved under ("start" for the first)."""
    return "start" if handoff == 1 else f"start-{handoff}"


@dataclass(slots=True)
class CallRecord:
    """Everything the flow keeps about one call, keyed by the platform's call id.

    A call may be handed to GenerativeAgent several times (``handoffs``); attempts are
    numbered across the whole call, so transfer ids ``<call id>-<n>`` never repeat. The
    top-level conversation, task, variables, route and outcome are the latest hand-off's.
    """

    call_id: str
    conversation_id: str
    country: str
    task_name: str | None = None
    input_variables: dict[str, str] = field(default_factory=dict)
    phase: Phase = Phase.DIALING
    outcome: Outcome | None = None
    attempts: list[Attempt] = field(default_factory=list)
    route: Route | None = None
    handoffs: list[Handoff] = field(default_factory=list)
    # The step answered to each front event ("start", "dial-1", ...): a redelivered
    # webhook gets the same answer, and nothing is requested or dialed twice.
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    timeline: list[tuple[float, str, str]] = field(default_factory=list)
    created_at: float = field(default_factory=time.time)

    @property
    def ended(self) -> bool:
        """True once the caller is gone."""
        return self.phase is Phase.ENDED

    @property
    def current(self) -> Attempt | None:
        """The latest attempt, if any."""
        return self.attempts[-1] if self.attempts else None

    @property
    def mode(self) -> TransferMode:
        """The transfer mode of the latest hand-off."""
        return self.handoffs[-1].mode if self.handoffs else TransferMode.PHONE_NUMBER

    @property
    def handoff(self) -> Handoff | None:
        """The latest hand-off, if any."""
        return self.handoffs[-1] if self.handoffs else None

    def attempts_of(self, handoff: int) -> list[Attempt]:
        """The attempts of hand-off number ``handoff``."""
        return [a for a in self.attempts if a.handoff == handoff]

    def note(self, event: str, detail: str = "") -> None:
        """Add a timeline entry (no caller data or phone numbers in ``detail``)."""
        self.timeline.append((time.time(), event, detail))

    def to_json(self) -> dict[str, Any]:
        """Plain data for the store."""
        return {
            "callId": self.call_id,
            "conversationId": self.conversation_id,
            "country": self.country,
            "taskName": self.task_name,
            "inputVariables": self.input_variables,
            "phase": self.phase.value,
            "outcome": self.outcome.value if self.outcome else None,
            "attempts": [a.to_json() for a in self.attempts],
            "route": self.route.to_json() if self.route else None,
            "handoffs": [h.to_json() for h in self.handoffs],
            "steps": self.steps,
            "timeline": [list(entry) for entry in self.timeline],
            "createdAt": self.created_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CallRecord:
        """Inverse of to_json."""
        outcome = data.get("outcome")
        route = data.get("route")
        handoffs = [Handoff.from_json(h) for h in data.get("handoffs") or []]
        record = cls(
            call_id=data["callId"],
            conversation_id=data["conversationId"],
            country=data["country"],
            task_name=data.get("taskName"),
            input_variables=dict(data.get("inputVariables") or {}),
            phase=Phase(data["phase"]),
            outcome=Outcome(outcome) if outcome else None,
            attempts=[Attempt.from_json(a) for a in data.get("attempts", [])],
            route=Route.from_json(route) if route else None,
            handoffs=handoffs,
            steps=dict(data.get("steps") or {}),
            timeline=[(float(t), str(e), str(d)) for t, e, d in data.get("timeline", [])],
            created_at=float(data.get("createdAt", time.time())),
        )
        if not record.handoffs and record.attempts:  # written before hand-offs were kept
            record.handoffs.append(
                Handoff(
                    1,
                    None,
                    record.conversation_id,
                    record.task_name,
                    dict(record.input_variables),
                    record.created_at,
                    record.outcome,
                    record.route,
                )
            )
        return record
