"""The call history as text, for the terminal: one line per call, or one call's timeline."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def clock(epoch: float) -> str:
    """An epoch second as a UTC timestamp to the second."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def call_lines(calls: list[dict[str, Any]]) -> list[str]:
    """A header and one line per call summary (as ``CallView.summary`` gives them)."""
    lines = [
        f"{'CALL ID':<34}  {'FRONT':<8}  {'STARTED (UTC)':<20}  {'OUTCOME':<14}  "
        f"{'ROUTE':<8}  {'ATTEMPTS':>8}  {'DURATION':>9}"
    ]
    for call in calls:
        outcome = call["outcome"] or ("in flight" if call["inFlight"] else "-")
        lines.append(
            f"{call['callId']:<34}  {call['front']:<8}  {clock(call['startedAt']):<20}  "
            f"{outcome:<14}  {call['route'] or '-':<8}  {call['attempts']:>8}  "
            f"{call['durationSeconds']:>8.1f}s"
        )
    return lines


def story_lines(call: dict[str, Any]) -> list[str]:
    """One call's whole story (as ``CallView.story`` gives it), like the demo prints calls."""
    lines = [
        f"call {call['callId']} ({call['front']}), started {clock(call['startedAt'])},"
        f" phase {call['phase']}",
        f"   conversation {call['conversationId']}, country {call['country'] or '-'},"
        f" task {call['taskName'] or '-'}, input variables {_variables(call['inputVariables'])}",
    ]
    for handoff in call["handoffs"]:
        sip = handoff.get("mode", "phone-number") != "phone-number"
        by = f" by {handoff['mode']}" if sip else ""
        lines.append(f"   hand-off {handoff['number']}{by} at {clock(handoff['startedAt'])}:")
        for attempt in handoff["attempts"]:
            detail = f" ({attempt['detail']})" if attempt["detail"] else ""
            returned = attempt.get("returnedBy")
            via = f" returned by {returned}" if returned else ""
            target = "" if sip else f" number {attempt['transferNumber'] or '-'}"
            lines.append(
                f"     attempt #{attempt['number']} {attempt['transferId']}{target}:"
                f" {attempt['outcome'] or 'pending'}{via}{detail}"
            )
        route = handoff["route"]
        if route:
            lines.append(f"     route {_route(route)}")
    lines.append("   timeline:")
    for entry in call["timeline"]:
        text = f"{entry['event']}: {entry['detail']}" if entry["detail"] else entry["event"]
        if "answeredInMs" in entry:
            text += f" (answered in {entry['answeredInMs']:.0f} ms)"
        lines.append(f"   {entry['offsetMs']:7.0f} ms  adapter  {text}")
    outcome = call["outcome"] or ("in flight" if call["inFlight"] else "none")
    route = call["route"] or "none"
    reason = f" ({call['reason']})" if call["reason"] else ""
    lines.append(
        f"   => call outcome {outcome}; route {route}{reason};"
        f" attempts: {call['attempts']}; {call['durationSeconds']:.1f} s"
    )
    return lines


def _route(route: Mapping[str, Any]) -> str:
    parts = [f"{route['kind']}: {route['reason']}" if route["reason"] else route["kind"]]
    if route["transferType"]:
        parts.append(f"transferType {route['transferType']}")
    if route["currentTaskName"]:
        parts.append(f"task {route['currentTaskName']}")
    for name in ("transferVariables", "referenceVariables"):
        if route[name]:
            parts.append(f"{name} {_variables(route[name])}")
    if route["destination"]:
        parts.append(f"to {route['destination']}")
    return "; ".join(parts)


def _variables(variables: Mapping[str, str]) -> str:
    return ", ".join(f"{name}={value}" for name, value in variables.items()) or "none"
