"""What the flow tells a front to do: dial, route, hold or nothing, as plain data.

Steps round-trip through JSON, so the answer to a front event can be saved and given
again, unchanged, to a redelivery of that event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class RouteKind(StrEnum):
    """Where the caller goes after GenerativeAgent."""

    AGENT = "agent"
    SYSTEM = "system"
    FALLBACK = "fallback"


@dataclass(frozen=True, slots=True)
class Route:
    """A routing decision. ``destination`` overrides the configured one for AGENT."""

    kind: RouteKind
    reason: str = ""
    transfer_type: str | None = None
    current_task_name: str | None = None
    transfer_variables: dict[str, str] = field(default_factory=dict)
    reference_variables: dict[str, str] = field(default_factory=dict)
    transfer_id: str | None = None
    destination: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain data for the store."""
        return {
            "kind": self.kind.value,
            "reason": self.reason,
            "transferType": self.transfer_type,
            "currentTaskName": self.current_task_name,
            "transferVariables": dict(self.transfer_variables),
            "referenceVariables": dict(self.reference_variables),
            "transferId": self.transfer_id,
            "destination": self.destination,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Route:
        """Inverse of to_json."""
        return cls(
            kind=RouteKind(data["kind"]),
            reason=data.get("reason", ""),
            transfer_type=data.get("transferType"),
            current_task_name=data.get("currentTaskName"),
            transfer_variables=dict(data.get("transferVariables") or {}),
            reference_variables=dict(data.get("referenceVariables") or {}),
            transfer_id=data.get("transferId"),
            destination=data.get("destination"),
        )


@dataclass(frozen=True, slots=True)
class Dial:
    """Dial ``number`` for at most ``timeout`` seconds of ringing."""

    attempt: int
    transfer_id: str
    number: str
    timeout: int


@dataclass(frozen=True, slots=True)
class SipDial:
    """Send the caller by SIP to ``uri`` with ``headers``, ringing at most ``timeout``
    seconds. GenerativeAgent gives the call back by BYE (the dial ends), by REFER (its
    Refer-To) or by a new INVITE. ``mode`` is the hand-off's transfer mode; the front
    fits ``headers`` in its own budget (the fixed headers come first)."""

    attempt: int
    transfer_id: str
    uri: str
    headers: tuple[tuple[str, str], ...]
    timeout: int
    mode: str


@dataclass(frozen=True, slots=True)
class Hangup:
    """The caller is gone: do nothing more."""


@dataclass(frozen=True, slots=True)
class Hold:
    """GenerativeAgent hung up but its context is not ready: keep the caller on hold
    (with sound, never silence) and ask again about ``attempt`` (the next read comes
    ``seconds`` after the front asks)."""

    attempt: int
    seconds: float
    first: bool = True
    # Set when the caller is on another leg than the call's own (an INVITE return):
    # the front asks again about this call id, not the leg's.
    call_id: str | None = None


Step = Dial | SipDial | Route | Hangup | Hold


def step_to_json(step: Step) -> dict[str, Any]:
    """Plain data for the store."""
    if isinstance(step, Dial):
        return {
            "step": "dial",
            "attempt": step.attempt,
            "transferId": step.transfer_id,
            "number": step.number,
            "timeout": step.timeout,
        }
    if isinstance(step, SipDial):
        return {
            "step": "sip-dial",
            "attempt": step.attempt,
            "transferId": step.transfer_id,
            "uri": step.uri,
            "headers": [list(header) for header in step.headers],
            "timeout": step.timeout,
            "mode": step.mode,
        }
    if isinstance(step, Route):
        return {"step": "route", **step.to_json()}
    if isinstance(step, Hold):
        seconds, first = step.seconds, step.first
        held = {"step": "hold", "attempt": step.attempt, "seconds": seconds, "first": first}
        return held if step.call_id is None else {**held, "callId": step.call_id}
    return {"step": "hangup"}


def step_from_json(data: dict[str, Any]) -> Step:
    """Inverse of step_to_json."""
    kind = data.get("step")
    if kind == "dial":
        return Dial(data["attempt"], data["transferId"], data["number"], data["timeout"])
    if kind == "sip-dial":
        headers = tuple((str(name), str(value)) for name, value in data["headers"])
        return SipDial(
            data["attempt"], data["transferId"], data["uri"], headers, data["timeout"], data["mode"]
        )
    if kind == "route":
        return Route.from_json(data)
    if kind == "hold":
        first = bool(data.get("first", True))
        return Hold(data["attempt"], float(data["seconds"]), first, data.get("callId"))
    return Hangup()
