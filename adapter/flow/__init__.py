"""The platform-neutral hand-off: request -> dial -> disconnect -> fetch -> route.

Knows nothing of Flask, TwiML or AMI; the Twilio and Asterisk fronts drive it.
"""

from adapter.flow.engine import AsyncTransferFlow, TransferFlow
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
    Route,
    RouteKind,
    SipDial,
    SipReturn,
    Step,
    TransferMode,
)
from adapter.flow.policy import FlowPolicy
from adapter.flow.routing import RouteContext, Router, load_router

__all__ = [
    "AsyncTransferFlow",
    "Attempt",
    "CallRecord",
    "CallStart",
    "Dial",
    "DialResult",
    "FlowPolicy",
    "Handoff",
    "Hangup",
    "Hold",
    "Outcome",
    "Phase",
    "Route",
    "RouteContext",
    "RouteKind",
    "Router",
    "SipDial",
    "SipReturn",
    "Step",
    "TransferFlow",
    "TransferMode",
    "load_router",
]
