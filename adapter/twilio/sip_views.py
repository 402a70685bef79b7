"""The Twilio webhooks of SIP returns: a REFER on the <Dial><Sip> leg (referUrl) and an
INVITE to the return URI (a Twilio SIP Domain whose voice URL is /twilio/sip-return).

They sit on the /twilio blueprint, so the body cap, the signature, the CallSid and the
AccountSid are checked first; any failure past those still answers TwiML.
"""

from __future__ import annotations

import logging

from flask import Response, request

from adapter.flow.routing import fallback
from adapter.observe.call_events import count_fallback
from adapter.observe.masking import safe_id
from adapter.twilio.sip import returned_call, sip_headers
from adapter.twilio.views import _answer, _call_sid, front, twilio

log = logging.getLogger("adapter.twilio")

# The Refer-To a REFER carried: Twilio's own parameter, then the raw header if passed on.
_REFER_TARGET = "ReferTransferTarget"


@twilio.post("/sip-refer")
def sip_refer() -> Response:
    """The <Dial referUrl>: GenerativeAgent referred the caller; route it."""
    call_sid = _call_sid()
    target = request.form.get(_REFER_TARGET) or request.form.get("SipHeader_Refer-To", "")
    return _answer(call_sid, "SIP REFER", lambda: front().flow.sip_refer(call_sid, target))


@twilio.post("/sip-return")
def sip_return() -> Response:
    """An INVITE to the return URI: GenerativeAgent gives the caller back on this new leg;
    it is matched to its hand-off by the returnURI's ``transfer`` parameter."""
    leg_sid = _call_sid()
    headers = sip_headers(request.form)
    found = returned_call(request.form.get("To", ""), headers)
    if found is None:
        log.warning("SIP return %s names no hand-off: fallback", safe_id(leg_sid))
        count_fallback("unknown-call")
        return _answer(leg_sid, "SIP return", lambda: fallback("SIP return for no known call"))
    call_sid, attempt = found
    return _answer(
        leg_sid, "SIP return", lambda: front().flow.sip_invite(call_sid, attempt, headers)
    )
