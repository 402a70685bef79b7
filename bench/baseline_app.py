"""The reference handler for the webhook benchmark: the least any correct one must do.

``gunicorn 'bench.baseline_app:create_app()'``. POST /twilio/voice checks
X-Twilio-Signature over the request URL and form, creates a PHONE_NUMBER call transfer
over one pooled httpx client per process, and answers TwiML that dials the number.
POST /twilio/dial-result (GenerativeAgent hung up) checks the signature, GETs the
transfer named by the ``transfer`` query parameter, and answers a <Dial> of
AGENT_DESTINATION when its outputContext says AGENT (else a <Hangup>).
No store, no retries, no rate limit, no fallback: a failed API call is a 500.
"""

from __future__ import annotations

import os

import httpx
from flask import Flask, Response, abort, request
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse

# One pooled client per worker process (gunicorn imports this module after the fork),
# with the same pool limits as the adapter's GenAgentClient.
HTTP = httpx.Client(
    timeout=4.0, limits=httpx.Limits(max_connections=100, max_keepalive_connections=50)
)

DIAL_ACTION = "/twilio/dial-result?attempt=1"


def create_app() -> Flask:
    """Read TWILIO_AUTH_TOKEN, GA_API_BASE_URL, GA_API_ID and GA_API_SECRET; build the app."""
    validator = RequestValidator(os.environ["TWILIO_AUTH_TOKEN"])
    transfers_url = os.environ["GA_API_BASE_URL"].rstrip("/") + "/generativeagent/v1/call-transfers"
    agent = os.environ.get("AGENT_DESTINATION", "+15550100")
    auth = {
        "asapp-api-id": os.environ["GA_API_ID"],
        "asapp-api-secret": os.environ["GA_API_SECRET"],
    }
    app = Flask("baseline")

    @app.post("/twilio/voice")
    def voice() -> Response:
        signature = request.headers.get("X-Twilio-Signature", "")
        if not validator.validate(request.url, request.form, signature):
            abort(403)
        call_sid = request.form.get("CallSid", "")
        if not call_sid:
            abort(400)
        created = HTTP.post(
            transfers_url,
            headers=auth,
            json={
                "id": f"{call_sid}-1",
                "externalConversationId": call_sid,
                "type": "PHONE_NUMBER",
                "phoneNumber": {"country": "US"},
            },
        )
        created.raise_for_status()
        number = created.json()["phoneNumber"]["transferNumber"]
        twiml = VoiceResponse()
        twiml.dial(action=DIAL_ACTION, answer_on_bridge=True, timeout=20).number(number)
        return Response(str(twiml), mimetype="text/xml")

    @app.post("/twilio/dial-result")
    def dial_result() -> Response:
        signature = request.headers.get("X-Twilio-Signature", "")
        if not validator.validate(request.url, request.form, signature):
            abort(403)
        transfer_id = request.args.get("transfer", "")
        if not request.form.get("CallSid") or not transfer_id:
            abort(400)
        got = HTTP.get(f"{transfers_url}/{transfer_id}", headers=auth)
        got.raise_for_status()
        output = got.json().get("outputContext") or {}
        twiml = VoiceResponse()
        if output.get("transferType") == "AGENT":
            twiml.dial(answer_on_bridge=True).number(agent)
        else:
            twiml.hangup()
        return Response(str(twiml), mimetype="text/xml")

    return app
