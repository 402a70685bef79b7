"""One stored call record read into what an operator may see: typed, tolerant, masked.

This is the only module that knows the record's JSON shape. Records written before
repeated hand-offs existed have no ``handoffs`` list: they read as one hand-off holding
every attempt. Anything malformed reads as missing rather than failing the listing.
Phone numbers and variable values are masked here, once; ids and names are kept.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from adapter.history.coerce import as_dict, as_epoch, as_int, as_list, as_opt_text, as_text
from adapter.observe.masking import mask_number, mask_text, mask_variables, safe_id
from adapter.store import Stored

TWILIO_CALL_SID = re.compile(r"CA[0-9a-f]{32}")
ASTERISK_UNIQUEID = re.compile(r"\d{1,20}\.\d{1,12}")
FRONTS = ("twilio", "asterisk")
IN_FLIGHT_PHASES = frozenset({"dialing", "holding"})
_HTTP_STATUS = re.compile(r"\bHTTP (\d{3})\b")
_CREATE_EVENT = "transfer requested"


@dataclass(frozen=True, slots=True)
class CallView:
    """A call as the history shows it. Every text field is already masked."""

    call_id: str
    front: str
    phase: str
    outcome: str | None
    route: str | None  # agent, system, fallback, or hangup for a caller who left
    reason: str
    started_at: float
    updated_at: float
    last_event_at: float
    conversation_id: str
    country: str
    task_name: str | None
    input_variables: dict[str, str]
    handoffs: tuple[dict[str, Any], ...]
    timeline: tuple[dict[str, Any], ...]
    create_ms: tuple[float, ...]  # each create's answer time, as the flow waited for it

    @property
    def in_flight(self) -> bool:
        """True while the caller is with GenerativeAgent (or being handed to it)."""
        return self.phase in IN_FLIGHT_PHASES

    @property
    def attempts(self) -> int:
        """Call transfers requested over every hand-off."""
        return sum(len(h["attempts"]) for h in self.handoffs)

    def duration(self, now: float) -> float:
        """Seconds from the first hand-off to the last event (to ``now`` while in flight)."""
        end = now if self.in_flight else self.last_event_at
        return max(0.0, round(end - self.started_at, 3))

    def summary(self, now: float) -> dict[str, Any]:
        """One line of the history, as JSON."""
        return {
            "callId": self.call_id,
            "front": self.front,
            "phase": self.phase,
            "inFlight": self.in_flight,
            "outcome": self.outcome,
            "route": self.route,
            "reason": self.reason,
            "attempts": self.attempts,
            "handoffs": len(self.handoffs),
            "startedAt": self.started_at,
            "updatedAt": self.updated_at,
            "durationSeconds": self.duration(now),
        }

    def story(self, now: float) -> dict[str, Any]:
        """The whole call, as JSON: its hand-offs, attempts, route and timeline."""
        return {
            **self.summary(now),
            "conversationId": self.conversation_id,
            "country": self.country,
            "taskName": self.task_name,
            "inputVariables": self.input_variables,
            "handoffs": list(self.handoffs),
            "handoffCount": len(self.handoffs),
            "timeline": list(self.timeline),
        }


def read_call(stored: Stored) -> CallView:
    """Read one stored record; never raises on a malformed one."""
    data = stored.data
    started = as_epoch(data.get("createdAt"), stored.updated_at)
    timeline, create_ms = _timeline(data.get("timeline"), started)
    outcome = as_opt_text(data.get("outcome"))
    handoffs = _handoffs(data, started)
    route = as_dict(data.get("route"))
    return CallView(
        call_id=safe_id(stored.call_id, 256),
        front=_front(stored.call_id, data.get("front")),
        phase=as_text(data.get("phase")) or "unknown",
        outcome=outcome,
        route=_route_kind(route, outcome),
        reason=_reason(route, timeline, handoffs),
        started_at=started,
        updated_at=stored.updated_at,
        last_event_at=timeline[-1]["at"] if timeline else stored.updated_at,
        conversation_id=safe_id(as_text(data.get("conversationId")), 256),
        country=as_text(data.get("country"))[:8],
        task_name=as_opt_text(data.get("taskName")),
        input_variables=mask_variables(as_dict(data.get("inputVariables"))),
        handoffs=tuple(handoffs),
        timeline=tuple(timeline),
        create_ms=tuple(create_ms),
    )


def infer_front(call_id: str) -> str:
    """twilio for a CallSid (CA + 32 hex), asterisk for a Uniqueid, else unknown."""
    if TWILIO_CALL_SID.fullmatch(call_id):
        return "twilio"
    if ASTERISK_UNIQUEID.fullmatch(call_id):
        return "asterisk"
    return "unknown"


def _front(call_id: str, recorded: object) -> str:
    return recorded if isinstance(recorded, str) and recorded in FRONTS else infer_front(call_id)


def _handoffs(data: dict[str, Any], started: float) -> list[dict[str, Any]]:
    attempts = [a for a in as_list(data.get("attempts")) if isinstance(a, dict)]
    raw = [h for h in as_list(data.get("handoffs")) if isinstance(h, dict)]
    if not raw:  # the shape before repeated hand-offs: one, holding every attempt
        raw = [
            {
                "number": 1,
                "startedAt": started,
                "conversationId": data.get("conversationId"),
                "taskName": data.get("taskName"),
                "inputVariables": data.get("inputVariables"),
                "outcome": data.get("outcome"),
                "route": data.get("route"),
            }
        ]
    handoffs = []
    for index, handoff in enumerate(raw, 1):
        number = as_int(handoff.get("number"), index)
        mine = [a for a in attempts if as_int(a.get("handoff"), 1) == number]
        handoffs.append(
            {
                "number": number,
                "startedAt": as_epoch(handoff.get("startedAt"), started),
                "conversationId": safe_id(as_text(handoff.get("conversationId")), 256),
                "taskName": as_opt_text(handoff.get("taskName")),
                "inputVariables": mask_variables(as_dict(handoff.get("inputVariables"))),
                "outcome": as_opt_text(handoff.get("outcome")),
                "route": _route(as_dict(handoff.get("route"))),
                "attempts": [_attempt(a) for a in mine],
                "mode": as_text(handoff.get("mode")) or "phone-number",
            }
        )
    return handoffs


def _attempt(data: dict[str, Any]) -> dict[str, Any]:
    detail = mask_text(as_text(data.get("detail")))
    status = _HTTP_STATUS.search(detail)
    returned = data.get("returnedAt")
    return {
        "number": as_int(data.get("number"), 0),
        "handoff": as_int(data.get("handoff"), 1),
        "transferId": safe_id(as_text(data.get("transferId")), 256),
        "transferNumber": mask_number(as_text(data.get("transferNumber"))),
        "expireAt": as_opt_text(data.get("expireAt")),
        "outcome": as_opt_text(data.get("outcome")),
        "detail": detail,
        "httpStatus": int(status.group(1)) if status else None,
        "returnedAt": as_epoch(returned, 0.0) if returned is not None else None,
        "returnedBy": as_opt_text(data.get("returnedBy")),
    }


def _route(data: dict[str, Any]) -> dict[str, Any] | None:
    if not data:
        return None
    destination = as_text(data.get("destination"))
    return {
        "kind": as_text(data.get("kind")) or "unknown",
        "reason": mask_text(as_text(data.get("reason"))),
        "transferType": as_opt_text(data.get("transferType")),
        "currentTaskName": as_opt_text(data.get("currentTaskName")),
        "transferVariables": mask_variables(as_dict(data.get("transferVariables"))),
        "referenceVariables": mask_variables(as_dict(data.get("referenceVariables"))),
        "transferId": as_opt_text(data.get("transferId")),
        "destination": mask_text(destination) if destination else None,
    }


def _route_kind(route: dict[str, Any], outcome: str | None) -> str | None:
    if route:
        return as_text(route.get("kind")) or "unknown"
    return "hangup" if outcome == "caller-hung-up" else None


def _reason(
    route: dict[str, Any], timeline: list[dict[str, Any]], handoffs: list[dict[str, Any]]
) -> str:
    if route:
        return mask_text(as_text(route.get("reason")))
    for entry in reversed(timeline):
        if entry["event"] == "ended":
            return str(entry["detail"])
    attempts = [a for h in handoffs for a in h["attempts"]]
    return str(attempts[-1]["detail"]) if attempts else ""


def _timeline(raw: object, started: float) -> tuple[list[dict[str, Any]], list[float]]:
    entries: list[dict[str, Any]] = []
    for item in as_list(raw):
        if not isinstance(item, list | tuple) or len(item) != 3:
            continue
        at = as_epoch(item[0], math.nan)
        if math.isnan(at):
            continue
        entries.append(
            {
                "at": at,
                "offsetMs": round((at - started) * 1000, 1),
                "event": safe_id(as_text(item[1]), 80),
                "detail": mask_text(as_text(item[2]))[:500],
            }
        )
    create_ms = []
    for entry, following in pairwise(entries):
        if entry["event"] == _CREATE_EVENT:
            took = round((following["at"] - entry["at"]) * 1000, 1)
            entry["answeredInMs"] = took
            create_ms.append(took)
    return entries, create_ms
