"""GenerativeAgent's SIP side, as the Twilio simulator plays it.

Given the <Sip> URI the adapter dialed, it answers (or not) the way ASAPP's SIP side
would: with its X-ASAPP-CallTransferId it connects the API transfer in the sandbox; with
X-GA-* headers (sip-headers mode) it needs no API. When the conversation ends it gives
the call back by BYE, by REFER (the Refer-To is the returnURI in API mode, or the static
return URI with X-GA-* parameters in headers mode, transfer variables first within
1,024 characters), or by INVITE to the return URI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import quote

import httpx

from adapter.sip import CALL_TRANSFER_ID_HEADER, fit_headers, parse_refer_to

SipReturnKind = Literal["BYE", "REFER", "INVITE"]
REFER_BUDGET = 1024
_SIP_FAILURES = {"busy": "486", "no-answer": "408", "failed": "503"}


class SipLegScript(Protocol):
    """What the simulator's AgentLeg says about a SIP leg."""

    @property
    def answer(self) -> str: ...
    @property
    def ending(self) -> str: ...
    @property
    def output(self) -> dict[str, Any]: ...
    @property
    def talk_seconds(self) -> int: ...
    @property
    def sip_return(self) -> SipReturnKind: ...
    @property
    def refer_to(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class SipLegResult:
    """How the SIP leg ended, as Twilio would report it."""

    how: Literal["action", "refer", "invite"]
    params: dict[str, str] = field(default_factory=dict)
    text: str = ""
    return_uri: str = ""  # INVITE: the Request-URI; REFER: the Refer-To
    headers: dict[str, str] = field(default_factory=dict)  # INVITE: X-GA-* headers


def sip_failure(answer: str) -> SipLegResult:
    """ASAPP's SIP side does not take the call: Twilio's dial status and SIP code."""
    code = _SIP_FAILURES.get(answer, "503")
    params = {"DialCallStatus": answer, "DialSipResponseCode": code, "CallStatus": "in-progress"}
    return SipLegResult("action", params, f"the SIP call is refused ({code})")


def connect(http: httpx.Client, sandbox_url: str, uri: str) -> tuple[str, dict[str, Any] | None]:
    """ASAPP receives the INVITE: (the transfer id or conversation id, the API transfer
    in API mode or None in headers mode)."""
    headers = dict(parse_refer_to(uri).headers)
    transfer_id = next(
        (v for k, v in headers.items() if k.lower() == CALL_TRANSFER_ID_HEADER.lower()), None
    )
    if transfer_id is None:
        return headers.get("X-GA-extConversationId", ""), None
    answer = http.post(f"{sandbox_url}/sandbox/sip-calls", json={"headers": headers})
    answer.raise_for_status()
    transfer: dict[str, Any] = answer.json()
    return transfer_id, transfer


def headers_refer_to(return_uri: str, conversation: str, output: dict[str, Any]) -> str:
    """The Refer-To of a sip-headers return: X-GA-* parameters, transfer variables first,
    within ASAPP's 1,024 characters; the rest dropped."""
    pairs = [("X-GA-extConId", conversation)]
    if output.get("transferType"):
        pairs.append(("X-GA-transfer", str(output["transferType"])))
    pairs += [(f"X-GA-tv-{k}", str(v)) for k, v in (output.get("transferVariables") or {}).items()]
    pairs += [(f"X-GA-rv-{k}", str(v)) for k, v in (output.get("referenceVariables") or {}).items()]
    kept = fit_headers(pairs, REFER_BUDGET).kept
    query = "&".join(f"{name}={quote(value, safe='')}" for name, value in kept)
    return f"{return_uri}?{query}" if query else return_uri


def ga_invite_headers(conversation: str, output: dict[str, Any]) -> dict[str, str]:
    """X-GA-* headers on an INVITE return in headers mode (as Twilio passes them)."""
    headers = {"X-GA-extConId": conversation}
    if output.get("transferType"):
        headers["X-GA-transfer"] = str(output["transferType"])
    for prefix, key in (("tv", "transferVariables"), ("rv", "referenceVariables")):
        for name, value in (output.get(key) or {}).items():
            headers[f"X-GA-{prefix}-{name}"] = str(value)
    return headers


def play_sip_leg(
    http: httpx.Client, sandbox_url: str, uri: str, leg: SipLegScript, static_return: str
) -> SipLegResult:
    """Play ASAPP's side of one <Sip> dial to ``uri``; ``static_return`` is the return URI
    a sip-headers deployment configured with ASAPP."""
    if leg.answer != "agent":
        return sip_failure(leg.answer)
    conversation, transfer = connect(http, sandbox_url, uri)
    dial = {"DialCallStatus": "completed", "DialCallDuration": str(leg.talk_seconds)}
    control = f"{sandbox_url}/sandbox/transfers/{conversation}"
    if leg.ending == "caller-hangs-up":
        if transfer is not None:
            http.post(f"{control}/caller-hangup").raise_for_status()
        params = dial | {"CallStatus": "completed"}
        return SipLegResult("action", params, "the caller hangs up while talking to it")
    return_uri = static_return
    if transfer is not None:
        http.post(f"{control}/complete", json=leg.output).raise_for_status()
        return_uri = (transfer.get("sip") or {}).get("returnURI") or static_return
    kind = leg.output.get("transferType")
    if leg.sip_return == "BYE":
        params = dial | {"CallStatus": "in-progress"}
        return SipLegResult("action", params, f"GenerativeAgent hangs up (BYE): {kind}")
    if leg.sip_return == "REFER":
        refer_to = leg.refer_to
        if refer_to is None:
            refer_to = (
                return_uri
                if transfer is not None
                else headers_refer_to(return_uri, conversation, leg.output)
            )
        text = f"GenerativeAgent sends REFER: {kind}"
        return SipLegResult("refer", text=text, return_uri=refer_to)
    headers = {} if transfer is not None else ga_invite_headers(conversation, leg.output)
    text = f"GenerativeAgent calls the return URI (INVITE): {kind}"
    return SipLegResult("invite", text=text, return_uri=return_uri, headers=headers)
