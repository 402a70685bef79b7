"""What the Twilio front adds for SIP hand-offs: the <Sip> target with its headers, and
reading the REFER and INVITE webhooks' parameters.

Twilio carries custom SIP headers as URI headers of the <Sip> noun (``sip:x@y?X-A=1``)
and allows 1,024 characters of them: headers past that are dropped (the fixed ones come
first, so only input variables are) and the drop is logged by count.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from urllib.parse import urlencode

from adapter.flow import SipDial
from adapter.sip import fit_headers, sip_uri_with_headers, split_transfer_id, transfer_id_in
from adapter.sip.headers import TWILIO_HEADER_BUDGET
from adapter.twilio.sids import is_call_sid

log = logging.getLogger("adapter.twilio")

SIP_REFER_PATH = "/twilio/sip-refer"
SIP_RETURN_PATH = "/twilio/sip-return"
_SIP_HEADER_PARAM = "SipHeader_"
MAX_HEADERS = 256


def refer_url(attempt: int) -> str:
    """Where Twilio posts a REFER received on the <Dial><Sip> leg of ``attempt``."""
    return f"{SIP_REFER_PATH}?{urlencode({'attempt': attempt})}"


def sip_target(step: SipDial) -> str:
    """The <Sip> URI: the step's URI with as many of its headers as Twilio carries."""
    fitted = fit_headers(step.headers, TWILIO_HEADER_BUDGET)
    if fitted.dropped:
        log.warning(
            "transfer %s: %d SIP headers over Twilio's %d characters were dropped",
            step.transfer_id,
            len(fitted.dropped),
            TWILIO_HEADER_BUDGET,
        )
    return sip_uri_with_headers(step.uri, fitted.kept)


def sip_headers(form: Mapping[str, str]) -> list[tuple[str, str]]:
    """The custom SIP headers Twilio passes as ``SipHeader_<name>`` parameters."""
    found: list[tuple[str, str]] = []
    for key, value in form.items():
        if key.startswith(_SIP_HEADER_PARAM) and len(found) < MAX_HEADERS:
            found.append((key[len(_SIP_HEADER_PARAM) :], value))
    return found


def returned_call(to: str, headers: list[tuple[str, str]]) -> tuple[str, int | None] | None:
    """The call and attempt an INVITE return belongs to: the ``transfer`` parameter the
    adapter put into the returnURI, else (sip-headers mode, whose returnURI is static) an
    X-GA-extConId header naming a call whose conversation is its own. None: unknown."""
    transfer_id = transfer_id_in(to)
    parts = split_transfer_id(transfer_id) if transfer_id else None
    if parts is not None and is_call_sid(parts[0]):
        return parts
    for name, value in headers:
        if name.lower() == "x-ga-extconid" and is_call_sid(value.strip()):
            return value.strip(), None
    return None
