"""The Twilio webhooks: voice (hand-off), dial result (action URL), call status.

Every signed request gets valid TwiML within the flow's budget, whatever the
GenerativeAgent API or the store does: on any failure the caller goes to the
fallback destination, never to Twilio's "application error".
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Blueprint, Response, abort, current_app, request
from werkzeug.datastructures import MultiDict

from adapter.flow import CallStart, DialResult, Hangup, Step, TransferFlow
from adapter.flow.routing import fallback
from adapter.genagent.countries import ISO_3166_ALPHA2
from adapter.observe.call_events import count_fallback
from adapter.observe.masking import mask_url, safe_id
from adapter.sip import TransferMode
from adapter.store import StoreError
from adapter.twilio.settings import TwilioSettings
from adapter.twilio.sids import is_call_sid
from adapter.twilio.signature import SignatureChecker
from adapter.twilio.twiml import TwimlRenderer

log = logging.getLogger("adapter.twilio")

MAX_BODY_BYTES = 64 * 1024  # a webhook's form is a few KiB; more is not Twilio

twilio = Blueprint("twilio", __name__, url_prefix="/twilio")

# Twilio names each webhook request; a retried request carries the same token.
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
_TOKEN_LIMIT = 128
_NO_ARGS: MultiDict[str, str] = MultiDict()
# Parent-call statuses meaning the caller is gone.
_CALLER_GONE = {"completed", "canceled", "busy", "failed", "no-answer"}
_DIAL_FAILURES = {
    "busy": DialResult.BUSY,
    "no-answer": DialResult.NO_ANSWER,
    "failed": DialResult.FAILED,
    "canceled": DialResult.FAILED,
}


class TwilioFront:
    """What the blueprint needs at request time, built once by the app factory."""

    def __init__(self, settings: TwilioSettings, flow: TransferFlow) -> None:
        self.settings = settings
        self.flow = flow
        self.signatures = SignatureChecker(settings.auth_token, settings.public_base_url)
        self.renderer = TwimlRenderer(settings)


def front() -> TwilioFront:
    """The Twilio front of the app serving this request."""
    found: TwilioFront = current_app.extensions["genagent_twilio"]
    return found


def classify_dial(form: MultiDict[str, str]) -> DialResult:
    """How the dial ended, from Twilio's DialCallStatus and the parent CallStatus."""
    if form.get("CallStatus", "").lower() in _CALLER_GONE:
        return DialResult.CALLER_HUNG_UP
    status = form.get("DialCallStatus", "").lower()
    if status in ("completed", "answered"):
        return DialResult.AGENT_DISCONNECTED
    return _DIAL_FAILURES.get(status, DialResult.FAILED)


@twilio.before_request
def _check_request() -> None:
    """Every /twilio request, in this order: body size (413), X-Twilio-Signature (403),
    CallSid's shape (400), AccountSid when TWILIO_ACCOUNT_SID is set (403)."""
    body = request.get_data(cache=True)  # MAX_CONTENT_LENGTH: 413 for a longer Content-Length
    chunked = request.content_length is None
    if chunked and len(body) >= MAX_BODY_BYTES and request.environ["wsgi.input"].read(1):
        abort(413)  # a chunked body is cut at the cap: one byte more means it was longer
    current = front()
    checker = current.signatures
    if not checker.is_valid(request):
        url = mask_url(checker.public_url(request))
        problem = "invalid" if request.headers.get("X-Twilio-Signature") else "missing"
        log.warning(
            "rejected a request: %s X-Twilio-Signature for %s (check PUBLIC_BASE_URL, "
            "PROXY_HOPS and TWILIO_AUTH_TOKEN)",
            problem,
            url,
            extra={"url": url, "status": 403},
        )
        abort(403)
    call_sid = request.form.get("CallSid", "")
    if not is_call_sid(call_sid):
        path, sid = safe_id(request.path), safe_id(call_sid, 40)
        log.warning("rejected a request to %s: malformed CallSid %r", path, sid)
        abort(400, "CallSid must be CA followed by 32 hex digits")
    expected = current.settings.account_sid
    if expected is not None and request.form.get("AccountSid") != expected:
        path = safe_id(request.path)
        log.warning("rejected call %s to %s: AccountSid is not TWILIO_ACCOUNT_SID", call_sid, path)
        abort(403)


def _call_sid() -> str:
    """The request's CallSid, already checked by _check_request."""
    return request.form["CallSid"]


def _answer(call_sid: str, event: str, decide: Callable[[], Step]) -> Response:
    """Run the flow and answer TwiML; any failure, rendering included, becomes the fallback."""
    call = safe_id(call_sid)
    try:
        step = decide()
    except Exception as exc:
        reason = "store-error" if isinstance(exc, StoreError) else "internal-error"
        log.exception(
            "call %s: %s failed; sending the caller to the fallback",
            call,
            event,
            extra={"call_id": call, "route": "fallback", "reason": reason},
        )
        count_fallback(reason)
        step = fallback(f"internal error during {event}")
    renderer = front().renderer
    try:
        document = renderer.render(step)
    except Exception:
        # The route may be saved already: a redelivery renders it again and lands here too.
        log.exception("call %s: the answer to %s could not be rendered; fallback", call, event)
        document = renderer.fallback_document
    return Response(document, mimetype="text/xml")


@twilio.post("/voice")
def voice() -> Response:
    """The voice webhook: hand the caller to GenerativeAgent."""
    call_sid = _call_sid()
    current = front()
    settings = current.settings
    form = request.form
    country = settings.country
    if settings.country_from_call:
        to_country = form.get("ToCountry", "").upper()
        country = to_country if to_country in ISO_3166_ALPHA2 else settings.country
    token = request.headers.get(IDEMPOTENCY_HEADER)
    args = request.args if request.query_string else _NO_ARGS  # most webhooks have no query
    variables = {key[3:]: value for key, value in args.items() if key.startswith("iv_") and key[3:]}
    for param, name in settings.caller_fields:
        if form.get(param):
            variables[name] = form[param]
    mode_text = request.args.get("mode")
    mode = TransferMode.parse(mode_text)
    if mode_text and mode is None:
        log.warning("call %s: unknown mode= ignored", safe_id(call_sid))
    call = CallStart(
        call_id=call_sid,
        conversation_id=args.get("conversation") or None,
        country=country,
        task_name=args.get("task") or settings.task_name,
        input_variables=variables,
        token=token[:_TOKEN_LIMIT] if token else None,
        mode=mode,
        customer_id=request.args.get("customer") or None,
    )
    return _answer(call_sid, "voice", lambda: current.flow.start(call))


@twilio.post("/dial-result")
def dial_result() -> Response:
    """The <Dial> action URL: the transfer number's call ended."""
    call_sid = _call_sid()
    attempt = _attempt()
    result = classify_dial(request.form)
    if attempt < 1:
        log.warning("call %s: dial result without a valid attempt number", safe_id(call_sid))
        count_fallback("unknown-call")
        return _answer(call_sid, "dial result", lambda: fallback("dial result without attempt"))
    return _answer(
        call_sid, "dial result", lambda: front().flow.dial_ended(call_sid, attempt, result)
    )


@twilio.post("/context")
def context() -> Response:
    """A caller on hold comes back here: read GenerativeAgent's context again (of the
    ``call`` parameter's call when the caller is on an INVITE return leg)."""
    call_sid = _call_sid()
    other = request.args.get("call", "")
    if is_call_sid(other):
        call_sid = other
    attempt = _attempt()
    if request.form.get("CallStatus", "").lower() in _CALLER_GONE:
        return Response(front().renderer.render(Hangup()), mimetype="text/xml")
    if attempt < 1:
        log.warning("call %s: context poll without a valid attempt number", call_sid)
        return _answer(call_sid, "context", lambda: fallback("context poll without attempt"))
    return _answer(call_sid, "context", lambda: front().flow.context_poll(call_sid, attempt))


def _attempt() -> int:
    text = request.args.get("attempt", "")
    return int(text) if text.isdigit() and len(text) < 6 else 0


@twilio.post("/status")
def status() -> Response:
    """Call status callback: a final status ends the call's state at any phase."""
    call_sid = _call_sid()
    call_status = request.form.get("CallStatus", "").lower()
    if call_status in _CALLER_GONE:
        try:
            front().flow.call_ended(call_sid, call_status)
        except Exception:
            log.exception("call %s: could not record the end of the call", call_sid)
            return Response("store unavailable", status=503, mimetype="text/plain")
    return Response(status=204)


# The SIP webhooks register on the same blueprint (and go through the same checks).
from adapter.twilio import sip_views  # noqa: E402, F401
