"""Twilio-signed voice webhooks, pre-signed into a file that wrk replays."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from bench.voice_webhook.processes import BenchError

AUTH_TOKEN = "bench-twilio-auth-token-0123456789abcdef"
NUMBER_MARKER = "<Number>+1999555"  # every sandbox transfer number starts so
VOICE_PATH = "/twilio/voice"


def voice_params(call_sid: str, index: int) -> dict[str, str]:
    """A voice webhook as Twilio posts it for an inbound call (its parameter names)."""
    caller = f"+1415{index % 10_000_000:07d}"
    return {
        "AccountSid": "AC" + "0123456789abcdef" * 2,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": "ringing",
        "Called": "+18005550100",
        "CalledCity": "",
        "CalledCountry": "US",
        "CalledState": "",
        "CalledZip": "",
        "Caller": caller,
        "CallerCity": "SAN FRANCISCO",
        "CallerCountry": "US",
        "CallerState": "CA",
        "CallerZip": "94103",
        "Direction": "inbound",
        "From": caller,
        "FromCity": "SAN FRANCISCO",
        "FromCountry": "US",
        "FromState": "CA",
        "FromZip": "94103",
        "To": "+18005550100",
        "ToCity": "",
        "ToCountry": "US",
        "ToState": "",
        "ToZip": "",
    }


def write_signed_requests(path: Path, url: str, count: int, tag: str) -> None:
    """``count`` webhooks for ``url``, each with a fresh CallSid: "signature<TAB>form".

    CallSids are CA + 32 hex digits: ``tag`` (unique to the run and phase), then ``i``.
    """
    validator = RequestValidator(AUTH_TOKEN)
    width = 32 - len(tag)
    if count > 16**width:
        raise BenchError(f"{count} requests do not fit in {width} hex digits")
    with path.open("w", encoding="ascii") as out:
        for i in range(count):
            params = voice_params(f"CA{tag}{i:0{width}x}", i)
            signature = validator.compute_signature(url, params)
            out.write(f"{signature}\t{urlencode(params)}\n")
