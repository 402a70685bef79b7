"""A tolerant, read-only view of a stored call record, for metrics, logs and history.

The one place that knows the record's JSON shape from the outside. It reads records
with or without ``handoffs`` (without: one hand-off holding every attempt), ignores
keys it does not know and never raises on a malformed value: what it cannot read is
None, empty or zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class AttemptView:
    """One transfer requested for the call."""

    number: int
    handoff: int
    transfer_id: str
    outcome: str | None
    detail: str


@dataclass(slots=True)
class HandoffView:
    """One time the caller was handed to GenerativeAgent."""

    number: int
    started_at: float | None
    outcome: str | None
    route: Mapping[str, Any] | None
    attempts: tuple[AttemptView, ...] = ()


@dataclass(slots=True)
class CallView:
    """What an observer needs of a call record."""

    call_id: str
    phase: str
    outcome: str | None
    created_at: float | None
    handoffs: tuple[HandoffView, ...] = field(default_factory=tuple)

    @property
    def attempts(self) -> tuple[AttemptView, ...]:
        """Every attempt of every hand-off, in order."""
        return tuple(a for h in self.handoffs for a in h.attempts)

    @property
    def current(self) -> HandoffView | None:
        """The latest hand-off, if any."""
        return self.handoffs[-1] if self.handoffs else None


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _mapping(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _attempt(data: Any, handoff: int) -> AttemptView | None:
    entry = _mapping(data)
    if entry is None:
        return None
    return AttemptView(
        number=_int(entry.get("number")),
        handoff=_int(entry.get("handoff"), handoff),
        transfer_id=_text(entry.get("transferId")) or "",
        outcome=_text(entry.get("outcome")),
        detail=_text(entry.get("detail")) or "",
    )


def read_call(data: Mapping[str, Any] | None) -> CallView | None:
    """The view of a stored record (``Stored.data``), or None for no record."""
    if not isinstance(data, Mapping):
        return None
    attempts = [a for a in (_attempt(x, 1) for x in _list(data.get("attempts"))) if a]
    route, outcome = _mapping(data.get("route")), _text(data.get("outcome"))
    created = _float(data.get("createdAt"))
    entries = [e for e in map(_mapping, _list(data.get("handoffs"))) if e is not None]
    if entries:
        handoffs = []
        for index, entry in enumerate(entries, start=1):
            number = _int(entry.get("number"), index)
            last = index == len(entries)
            handoffs.append(
                HandoffView(
                    number=number,
                    started_at=_float(entry.get("startedAt")),
                    outcome=_text(entry.get("outcome")) or (outcome if last else None),
                    route=_mapping(entry.get("route")) or (route if last else None),
                    attempts=tuple(a for a in attempts if a.handoff == number),
                )
            )
    elif attempts or route:
        handoffs = [HandoffView(1, created, outcome, route, tuple(attempts))]
    else:  # a record made by a hang-up before any hand-off
        handoffs = []
    return CallView(
        call_id=_text(data.get("callId")) or "",
        phase=_text(data.get("phase")) or "",
        outcome=outcome,
        created_at=created,
        handoffs=tuple(handoffs),
    )
