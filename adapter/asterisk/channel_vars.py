"""What the AMI worker reads and writes on a caller's channel: the contexts it redirects
into, the events it listens for, the variables a hand-off reads and a route sets.

Pure code: nothing here talks to Asterisk.
"""

from __future__ import annotations

import re

from adapter.asterisk.sip_channel import SIP_DIAL_CONTEXT
from adapter.flow import DialResult, Route
from adapter.flow.model import RouteKind
from adapter.genagent.values import variable_value

DIAL_CONTEXT = "genagent-dial"
ROUTE_CONTEXTS = {
    RouteKind.AGENT: "genagent-agent",
    RouteKind.SYSTEM: "genagent-system",
    RouteKind.FALLBACK: "genagent-fallback",
}
REQUIRED_CONTEXTS = ("genagent-handoff", DIAL_CONTEXT, *ROUTE_CONTEXTS.values())
HANDOFF_EVENT = "GenerativeAgentTransfer"
RETURNED_EVENT = "GenerativeAgentReturned"
# Where a resynchronised channel is parked: on hold in one of our contexts.
HOLD_APPS = {"musiconhold", "wait"}
DIAL_RESULTS = {
    "ANSWER": DialResult.AGENT_DISCONNECTED,
    "NOANSWER": DialResult.NO_ANSWER,
    "BUSY": DialResult.BUSY,
    "CANCEL": DialResult.CALLER_HUNG_UP,
}
_VAR_NAME = re.compile(r"[^A-Za-z0-9_]")
# What the IVR may set before the hand-off (besides GA_IV_<name>), and the dialplan's
# count of hand-offs of the channel (it names each hand-off: the same count is a redelivery).
HANDOFF_COUNTER = "GA_HANDOFF_SEQ"
CONTEXT_VARIABLES = (
    "GA_TASK",
    "GA_CONVERSATION_ID",
    "GA_COUNTRY",
    "GA_TRANSFER_MODE",
    "GA_CUSTOMER_ID",
    HANDOFF_COUNTER,
)
# Where the dialplan holds a caller after its dial ended, or after a REFER / INVITE return.
DIAL_CONTEXTS = (DIAL_CONTEXT, SIP_DIAL_CONTEXT)
REFERRED_CONTEXT, INBOUND_CONTEXT = "genagent-sip-referred", "genagent-sip-inbound"
# Route variables a hand-off's route sets; an earlier route's are cleared at a new hand-off.
ROUTE_VARIABLE_PREFIXES = ("GA_TV_", "GA_RV_")


def dial_result(status: str) -> DialResult:
    """DIALSTATUS as a flow result; CONGESTION, CHANUNAVAIL and the rest are failures."""
    return DIAL_RESULTS.get(status.strip().upper(), DialResult.FAILED)


def route_variables(route: Route) -> dict[str, str]:
    """The channel variables a route context receives (never raises on a value).

    Names keep letters, digits and ``_`` (``.`` and ``-`` become ``_``); values are
    passed exact, AmiSession.setvar fits them to the AMI line.
    """
    variables = {
        "GA_TRANSFER_TYPE": text_of(route.transfer_type),
        "GA_CURRENT_TASK": text_of(route.current_task_name),
        "GA_TRANSFER_ID": text_of(route.transfer_id),
    }
    if route.kind is RouteKind.FALLBACK:
        variables["GA_FALLBACK_REASON"] = text_of(route.reason)
    for prefix, values in (
        ("GA_TV_", route.transfer_variables),
        ("GA_RV_", route.reference_variables),
    ):
        for name, value in values.items():
            variables[prefix + _VAR_NAME.sub("_", text_of(name))[:64]] = text_of(value)
    return variables


def text_of(value: object) -> str:
    """A value a custom router may have left untyped, as text ('' if it cannot be)."""
    if isinstance(value, str):
        return value
    try:
        return variable_value(value)
    except (ValueError, TypeError, RecursionError):
        return ""


def attempt_of(transfer_id: str, uniqueid: str) -> int | None:
    """The attempt number in ``<uniqueid>-<n>``, or None if the id is not this call's."""
    prefix, _, number = transfer_id.rpartition("-")
    if prefix == uniqueid and number.isdigit():
        return int(number)
    return None
