"""The pieces of a SIP hand-off the rules build: the request, the dial, the route read
from X-GA-* parameters. Pure functions of the call's record and the SIP settings."""

from __future__ import annotations

from dataclasses import replace

from adapter.flow.model import (
    Attempt,
    CallRecord,
    Hold,
    Route,
    RouteKind,
    SipDial,
    SipReturn,
    Step,
    TransferMode,
)
from adapter.genagent import SipTransferRequest
from adapter.sip.headers import api_headers, ga_headers
from adapter.sip.refer import GaReturn
from adapter.sip.return_uri import return_uri_for
from adapter.sip.settings import SipTransferSettings


def sip_request(
    record: CallRecord, attempt: Attempt, settings: SipTransferSettings
) -> SipTransferRequest:
    """The create request of a sip-api attempt; its returnURI names the attempt."""
    return_uri = settings.return_uri
    return SipTransferRequest(
        id=attempt.transfer_id,
        external_conversation_id=record.conversation_id,
        return_uri=return_uri_for(return_uri, attempt.transfer_id) if return_uri else None,
        return_transfer_type=settings.return_type,
        return_invite_authentication=settings.invite_auth,
        task_name=record.task_name,
        input_variables=record.input_variables,
    )


def sip_dial(
    record: CallRecord, attempt: Attempt, settings: SipTransferSettings, timeout: int
) -> SipDial | None:
    """What to dial for a SIP attempt (None: the mode's SIP target is not configured)."""
    mode = record.mode
    uri = settings.target(mode)
    if uri is None:
        return None
    if mode is TransferMode.SIP_API:
        headers = api_headers(attempt.transfer_id)
    else:
        handoff = record.handoff
        customer = handoff.customer_id if handoff else None
        headers = ga_headers(
            record.task_name, record.conversation_id, customer, record.input_variables
        )
    return SipDial(attempt.number, attempt.transfer_id, uri, headers, timeout, mode.value)


def route_from_ga(ga: GaReturn, transfer_id: str | None) -> Route:
    """The default route for X-GA-* parameters: AGENT or SYSTEM by X-GA-transfer, else the
    fallback; the agent's variables travel on every route, the fallback included."""
    if ga.transfer_type == "AGENT":
        kind, reason = RouteKind.AGENT, "GenerativeAgent asked for a human agent (SIP)"
    elif ga.transfer_type == "SYSTEM":
        kind, reason = RouteKind.SYSTEM, "GenerativeAgent handed the call back (SIP)"
    else:
        kind = RouteKind.FALLBACK
        reason = "; ".join(ga.problems) if ga.problems else "no usable X-GA-transfer"
    return Route(
        kind,
        reason=reason[:300],
        transfer_type=ga.transfer_type,
        transfer_variables=dict(ga.transfer_variables),
        reference_variables=dict(ga.reference_variables),
        transfer_id=transfer_id,
    )


def for_leg(record: CallRecord, attempt: Attempt, step: Step) -> Step:
    """A Hold for a caller who came back on an INVITE leg asks about the call, not the leg."""
    if isinstance(step, Hold) and attempt.returned_by is SipReturn.INVITE:
        return replace(step, call_id=record.call_id)
    return step
