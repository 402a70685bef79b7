"""The answer an event gets when the flow has already decided: saved, or where the call is."""

from __future__ import annotations

from adapter.flow.model import Attempt, CallRecord, Hangup, SipReturn, Step, step_from_json
from adapter.flow.routing import fallback


def answered(record: CallRecord, key: str) -> Step:
    """The answer saved under ``key``; else the call's end, its route or the fallback."""
    saved = record.steps.get(key)
    if saved is not None:
        return step_from_json(saved)
    if record.ended:
        return Hangup()
    return record.route or fallback("out-of-order event for this call")


def after_return(record: CallRecord, attempt: Attempt) -> Step:
    """The dial of an attempt that came back by REFER or INVITE ended. After a REFER the
    answer is the REFER's (whichever a platform follows, the caller goes one way); after
    an INVITE the caller is on the new leg, so this one ends."""
    if attempt.returned_by is SipReturn.INVITE:
        return Hangup()
    if attempt.returned_by is SipReturn.REFER:
        return answered(record, f"refer-{attempt.number}")
    return answered(record, f"dial-{attempt.number}")
