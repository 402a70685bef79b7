"""Call records as the flow writes them, for the history tests."""

from __future__ import annotations

from typing import Any

SID = "CA" + "0123456789abcdef" * 2
T0 = 1_800_000_000.0


def record(call_id: str = SID, **changes: Any) -> dict[str, Any]:
    """A record as the flow writes it today: one hand-off, a no-answer then an AGENT return."""
    data: dict[str, Any] = {
        "callId": call_id,
        "conversationId": call_id,
        "country": "US",
        "taskName": "billing",
        "inputVariables": {"accountNumber": "3434", "callerNumber": "+15551230001"},
        "phase": "routed",
        "outcome": "agent-returned",
        "attempts": [
            {
                "number": 1,
                "transferId": f"{call_id}-1",
                "transferNumber": "+19995550101",
                "expireAt": "2027-01-15T08:01:00+00:00",
                "outcome": "no-answer",
                "detail": "",
            },
            {
                "number": 2,
                "transferId": f"{call_id}-2",
                "transferNumber": "+19995550102",
                "expireAt": "2027-01-15T08:02:00+00:00",
                "outcome": "agent-returned",
                "detail": "",
            },
        ],
        "route": {
            "kind": "agent",
            "reason": "GenerativeAgent asked for a human agent",
            "transferType": "AGENT",
            "currentTaskName": "billing_dispute",
            "transferVariables": {"reason": "chargeback-77"},
            "referenceVariables": {"ssn": "123-45-6789"},
            "transferId": f"{call_id}-2",
            "destination": "+15550100",
        },
        "steps": {},
        "timeline": [
            [T0, "handoff", ""],
            [T0 + 0.001, "transfer requested", "attempt 1"],
            [T0 + 0.051, "dial", "attempt 1, 20 s"],
            [T0 + 20.0, "dial ended", "attempt 1: no-answer"],
            [T0 + 20.01, "transfer requested", "attempt 2"],
            [T0 + 20.04, "dial", "attempt 2, 20 s"],
            [T0 + 62.0, "dial ended", "attempt 2: agent-disconnected"],
            [T0 + 62.2, "context fetched", "status COMPLETED"],
            [T0 + 62.2, "route", "agent: GenerativeAgent asked for a human agent"],
        ],
        "createdAt": T0,
    }
    data.update(changes)
    return data
