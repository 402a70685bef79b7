"""A Twilio call simulator: plays calls against the adapter the way Twilio does.

It sends signed form POSTs with Twilio's parameter names, follows the TwiML it gets
back (Say, Dial with its action callback, Redirect, Enqueue, Hangup) and, when a
transfer number is dialed, plays GenerativeAgent's side through the sandbox's control
endpoints. The demo and the end-to-end tests both drive the real app with it.
"""

from __future__ import annotations

import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode, urljoin, urlsplit

import httpx
from twilio.request_validator import RequestValidator

from adapter.demo.sip_agent import SipReturnKind, play_sip_leg
from adapter.twilio.sids import new_call_sid

SIMULATED_ACCOUNT_SID = "AC" + "0" * 32
# Where a sip-headers deployment told ASAPP to return calls (a Twilio SIP Domain).
DEFAULT_SIP_RETURN_URI = "sip:genagent-return@adapter.sip.twilio.com"
Answer = Literal["agent", "no-answer", "busy", "failed", "expired"]
Ending = Literal["agent-completes", "caller-hangs-up"]


@dataclass(frozen=True, slots=True)
class AgentLeg:
    """What happens when the adapter dials one transfer number."""

    answer: Answer = "agent"
    ending: Ending = "agent-completes"
    output: dict[str, Any] = field(default_factory=lambda: {"transferType": "SYSTEM"})
    talk_seconds: int = 42
    # A SIP hand-off: how GenerativeAgent gives the call back, and (to play a broken
    # return) a Refer-To to send instead of the one it would build.
    sip_return: SipReturnKind = "BYE"
    refer_to: str | None = None


@dataclass(frozen=True, slots=True)
class CallScript:
    """One simulated caller: the legs to play, and the hand-off's query string."""

    legs: tuple[AgentLeg, ...] = (AgentLeg(),)
    query: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    hang_up_before_answer: bool = False
    # Later hand-offs: each time the adapter returns the caller to the IVR, the IVR hands
    # the caller over again with the next of these queries (until none is left).
    again: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Event:
    """One line of a call's timeline."""

    at: float  # seconds since the call started
    actor: str
    text: str


@dataclass(slots=True)
class CallResult:
    """What the caller experienced, and what Twilio would have seen."""

    call_sid: str
    started_at: float = field(default_factory=time.time)
    events: list[Event] = field(default_factory=list)
    dialed: list[str] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    played: list[str] = field(default_factory=list)
    returns: list[str] = field(default_factory=list)  # IVR URLs the caller was sent back to
    documents: list[ET.Element] = field(default_factory=list)
    final: str = ""
    final_verb: str = ""
    final_target: str = ""
    statuses: list[int] = field(default_factory=list)
    sip_dialed: list[str] = field(default_factory=list)  # <Sip> URIs, headers included
    # After an INVITE return: the INVITE leg's CallSid, and the verb answered to the
    # first leg's dial action when GenerativeAgent finally hangs that leg up.
    invite_leg: str = ""
    first_leg_end: str = ""


@dataclass(slots=True)
class _Call:
    """One call in progress."""

    result: CallResult
    legs: list[AgentLeg]
    again: list[dict[str, str]] = field(default_factory=list)
    caller_gone: bool = False
    started: float = field(default_factory=time.monotonic)
    # The first leg's dial action, still owed after an INVITE return.
    pending_action: tuple[str, dict[str, str]] | None = None

    def log(self, actor: str, text: str) -> None:
        self.result.events.append(Event(time.monotonic() - self.started, actor, text))


class TwilioSimulator:
    """Plays scripted calls against ``app_url``, with the sandbox at ``sandbox_url``."""

    def __init__(
        self,
        app_url: str,
        sandbox_url: str,
        auth_token: str,
        *,
        http: httpx.Client | None = None,
        voice_path: str = "/twilio/voice",
        account_sid: str = SIMULATED_ACCOUNT_SID,
        sip_return_uri: str = DEFAULT_SIP_RETURN_URI,
    ) -> None:
        self.app_url = app_url.rstrip("/")
        self.sandbox_url = sandbox_url.rstrip("/")
        self.voice_path = voice_path
        self.account_sid = account_sid
        self.sip_return_uri = sip_return_uri
        self._validator = RequestValidator(auth_token)
        self._http = http or httpx.Client(timeout=30)

    def close(self) -> None:
        """Close the HTTP client."""
        self._http.close()

    # --- calls ---------------------------------------------------------------------------

    def play(self, script: CallScript, call_sid: str | None = None) -> CallResult:
        """Play one call to its end and return what happened."""
        call = _Call(
            CallResult(call_sid=call_sid or new_call_sid()),
            list(script.legs),
            list(script.again),
        )
        base = self._base_params(call.result.call_sid) | script.params
        url: str | None = f"{self.app_url}{self.voice_path}"
        if script.query:
            url = f"{url}?{urlencode(script.query)}"
        params = base | {"CallStatus": "ringing"}
        call.log("twilio", "incoming call")
        if script.hang_up_before_answer:
            call.caller_gone = True
            self.status_callback(call)
        while url is not None:
            document = self._post(url, params, call)
            if document is None or call.caller_gone:
                break  # Twilio ignores TwiML answered after the caller left
            call.result.documents.append(document)
            url, extra = self._execute(document, url, call)
            params = base | extra
        if call.caller_gone and not call.result.final:
            call.result.final = "the caller hung up"
        if call.pending_action is not None:
            self._end_first_leg(call)
        if not script.hang_up_before_answer:
            self.status_callback(call)
        return call.result

    def _execute(
        self, document: ET.Element, url: str, call: _Call
    ) -> tuple[str | None, dict[str, str]]:
        """Run one TwiML document; returns the next request Twilio makes, if any."""
        for verb in document:
            if verb.tag == "Say":
                call.result.said.append(verb.text or "")
                call.log("caller", f"hears: {verb.text!r}")
            elif verb.tag == "Play":
                call.result.played.append((verb.text or "").strip())
                call.log("caller", "hears hold audio")
            elif verb.tag == "Dial" and verb.get("action") and verb.find("Sip") is not None:
                return self._dial_sip(verb, url, call)
            elif verb.tag == "Dial" and verb.get("action"):
                number = (verb.findtext("Number") or "").strip()
                call.result.dialed.append(number)
                call.log("twilio", f"dials {number}, ringing up to {verb.get('timeout')} s")
                leg = call.legs.pop(0) if call.legs else AgentLeg(answer="no-answer")
                dial = self._play_leg(leg, number, call)
                call.caller_gone = dial["CallStatus"] == "completed"
                return urljoin(url, verb.get("action", "")), dial
            elif verb.tag == "Redirect":
                target = urljoin(url, (verb.text or "").strip())
                if target.startswith(self.app_url):
                    return target, {"CallStatus": "in-progress"}
                call.result.returns.append(target)
                if call.again:
                    call.log("caller", f"returned to the IVR: {target}")
                    call.log("ivr", "hands the caller to GenerativeAgent again")
                    query = call.again.pop(0)
                    voice = f"{self.app_url}{self.voice_path}"
                    return (f"{voice}?{urlencode(query)}" if query else voice), {
                        "CallStatus": "in-progress"
                    }
                self._finish(call, "Redirect", target, f"returned to the IVR: {target}")
                return None, {}
            elif verb.tag in ("Dial", "Enqueue"):
                target = _destination(verb)
                self._finish(call, verb.tag, target, f"connected to {target}")
                return None, {}
            elif verb.tag == "Hangup":
                self._finish(call, "Hangup", "", "the adapter hung up")
                return None, {}
        self._finish(call, "", "", "the TwiML ended: Twilio hangs up")
        return None, {}

    def status_callback(self, call: _Call, status: str = "completed") -> None:
        """POST /twilio/status as Twilio does when the call ends."""
        url = f"{self.app_url}/twilio/status"
        params = self._base_params(call.result.call_sid) | {"CallStatus": status}
        call.log("twilio", f"POST {_path(url)} CallStatus={status}")
        call.result.statuses.append(self._signed_post(url, params).status_code)

    # --- the GenerativeAgent side ------------------------------------------------------

    def _dial_sip(
        self, verb: ET.Element, url: str, call: _Call
    ) -> tuple[str | None, dict[str, str]]:
        """<Dial><Sip>: play ASAPP's SIP side, then Twilio's request for how it ended."""
        uri = (verb.findtext("Sip") or "").strip()
        call.result.sip_dialed.append(uri)
        call.log("twilio", f"dials SIP, ringing up to {verb.get('timeout')} s")
        leg = call.legs.pop(0) if call.legs else AgentLeg(answer="no-answer")
        ended = play_sip_leg(self._http, self.sandbox_url, uri, leg, self.sip_return_uri)
        call.log("agent", ended.text)
        action = urljoin(url, verb.get("action", ""))
        if ended.how == "action":
            call.caller_gone = ended.params.get("CallStatus") == "completed"
            return action, ended.params
        if ended.how == "refer":
            refer = urljoin(url, verb.get("referUrl", ""))
            return refer, {"CallStatus": "in-progress", "ReferTransferTarget": ended.return_uri}
        # INVITE: the caller goes on over a new leg; the first leg's action comes at the end.
        leg_sid = new_call_sid()
        call.result.invite_leg = leg_sid
        done = {"DialCallStatus": "completed", "CallStatus": "in-progress"}
        call.pending_action = (action, done)
        invite = {
            "CallSid": leg_sid,
            "From": "sip:genagent@sip.asapp.example.com",
            "To": ended.return_uri,
            "Called": ended.return_uri,
            "CallStatus": "ringing",
        } | {f"SipHeader_{name}": value for name, value in ended.headers.items()}
        return f"{self.app_url}/twilio/sip-return", invite

    def _end_first_leg(self, call: _Call) -> None:
        """After an INVITE return, GenerativeAgent at last hangs up the first leg."""
        assert call.pending_action is not None
        url, params = call.pending_action
        call.pending_action = None
        base = self._base_params(call.result.call_sid)
        document = self._post(url, base | params, call)
        verbs = [v.tag for v in document] if document is not None else []
        call.result.first_leg_end = ",".join(verbs)

    def _play_leg(self, leg: AgentLeg, number: str, call: _Call) -> dict[str, str]:
        """Play one dial of a transfer number; returns the action callback's parameters."""
        if leg.answer == "expired":
            self._expire_number(number)
            call.log("agent", "the transfer number expired before it was dialed")
        if leg.answer in ("no-answer", "busy", "failed"):
            call.log("agent", f"the number does not connect ({leg.answer})")
            return {"DialCallStatus": leg.answer, "CallStatus": "in-progress"}
        connected = self._http.post(
            f"{self.sandbox_url}/sandbox/calls", json={"transferNumber": number}
        )
        if connected.status_code == 404:
            call.log("agent", "the number is not in service")
            return {"DialCallStatus": "failed", "CallStatus": "in-progress"}
        connected.raise_for_status()
        transfer_id = connected.json()["id"]
        call.log("agent", f"GenerativeAgent answers (transfer {transfer_id})")
        dial = {
            "DialCallStatus": "completed",
            "DialCallSid": new_call_sid(),
            "DialCallDuration": str(leg.talk_seconds),
            "DialBridged": "true",
        }
        control = f"{self.sandbox_url}/sandbox/transfers/{transfer_id}"
        if leg.ending == "caller-hangs-up":
            self._http.post(f"{control}/caller-hangup").raise_for_status()
            call.log("caller", "hangs up while talking to GenerativeAgent")
            return dial | {"CallStatus": "completed"}
        self._http.post(f"{control}/complete", json=leg.output).raise_for_status()
        call.log(
            "agent", f"GenerativeAgent hangs up: transferType {leg.output.get('transferType')}"
        )
        return dial | {"CallStatus": "in-progress"}

    def _expire_number(self, number: str) -> None:
        transfers = self._http.get(f"{self.sandbox_url}/sandbox/transfers").json()["transfers"]
        for transfer in transfers:
            phone = transfer.get("phoneNumber") or {}
            if transfer["status"] == "ACTIVE" and phone.get("transferNumber") == number:
                expire = f"{self.sandbox_url}/sandbox/transfers/{transfer['id']}/expire"
                self._http.post(expire).raise_for_status()

    # --- HTTP as Twilio speaks it ------------------------------------------------------

    def _post(self, url: str, params: dict[str, str], call: _Call) -> ET.Element | None:
        extra = "".join(
            f" {key}={params[key]}" for key in ("DialCallStatus", "CallStatus") if key in params
        )
        call.log("twilio", f"POST {_path(url)}{extra}")
        started = time.monotonic()
        response = self._signed_post(url, params)
        call.result.statuses.append(response.status_code)
        took = (time.monotonic() - started) * 1000
        if response.status_code != 200:
            call.log("caller", f"hears an application error (HTTP {response.status_code})")
            call.result.final = f"application error (HTTP {response.status_code})"
            return None
        # The adapter's own answer over loopback, not untrusted input.
        document = ET.fromstring(response.content)  # noqa: S314
        verbs = ", ".join(_describe(v) for v in document) or "(empty)"
        call.log("adapter", f"answers in {took:.0f} ms: {verbs}")
        return document

    def _signed_post(
        self, url: str, params: dict[str, str], token: str | None = None
    ) -> httpx.Response:
        """POST as Twilio does: signed, and named by an idempotency token (a retry of the
        same request would carry the same token)."""
        signature = self._validator.compute_signature(url, params)
        headers = {
            "X-Twilio-Signature": signature,
            "I-Twilio-Idempotency-Token": token or uuid.uuid4().hex,
        }
        return self._http.post(url, data=params, headers=headers)

    def _base_params(self, sid: str) -> dict[str, str]:
        return {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": sid,
            "Direction": "inbound",
            "From": "+15551230001",
            "To": "+15559870000",
            "Caller": "+15551230001",
            "Called": "+15559870000",
            "FromCountry": "US",
            "ToCountry": "US",
        }

    @staticmethod
    def _finish(call: _Call, verb: str, target: str, text: str) -> None:
        call.result.final_verb, call.result.final_target, call.result.final = verb, target, text
        call.log("caller", text)


def _destination(verb: ET.Element) -> str:
    if verb.tag == "Enqueue":
        task = verb.findtext("Task")
        queue = (verb.text or "").strip() or f"workflow {verb.get('workflowSid')}"
        return f"queue {queue}" + (f" with task {task}" if task else "")
    for noun in verb:
        if noun.tag == "Client":
            return f"client {noun.findtext('Identity')}"
        return f"{noun.tag.lower()} {(noun.text or '').strip()}"
    return (verb.text or "").strip()


def _describe(verb: ET.Element) -> str:
    if verb.tag == "Dial":
        nouns = [n.tag for n in verb]
        refer = " and referUrl" if verb.get("referUrl") else ""
        return f"Dial[{', '.join(nouns)}]" + (f" with action{refer}" if verb.get("action") else "")
    return verb.tag


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")
