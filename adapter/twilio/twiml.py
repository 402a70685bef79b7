"""Flow steps as TwiML, built with twilio's VoiceResponse (never hand-written XML)."""

from __future__ import annotations

import json
import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from twilio.twiml.voice_response import VoiceResponse

from adapter.flow import Dial, Hangup, Hold, Route, RouteKind, SipDial, Step
from adapter.flow.routing import fallback
from adapter.genagent.values import dialable_number, has_xml_invalid
from adapter.sip import fit_headers, sip_uri_with_headers
from adapter.sip.headers import TWILIO_HEADER_BUDGET
from adapter.twilio.settings import Destination, DestinationKind, TwilioSettings
from adapter.twilio.sip import refer_url, sip_target

log = logging.getLogger("adapter.twilio")

DIAL_RESULT_PATH = "/twilio/dial-result"
CONTEXT_PATH = "/twilio/context"
_HEADER_TOKEN = re.compile(r"[A-Za-z0-9_.-]{1,64}", re.ASCII)


def action_url(attempt: int) -> str:
    """Where Twilio reports how the dial of ``attempt`` ended (relative to the webhook)."""
    return f"{DIAL_RESULT_PATH}?attempt={int(attempt)}"


def context_url(attempt: int, call_id: str | None = None) -> str:
    """Where a caller on hold comes back to, so the context of ``attempt`` is read again
    (of ``call_id`` when the caller is on another leg: an INVITE return)."""
    query: dict[str, str | int] = {"attempt": attempt}
    if call_id is not None:
        query["call"] = call_id
    return f"{CONTEXT_PATH}?{urlencode(query)}"


class RenderError(ValueError):
    """A step that cannot become a TwiML document Twilio would accept."""


class TwimlRenderer:
    """Turns flow steps into TwiML documents for one deployment's settings."""

    def __init__(self, settings: TwilioSettings) -> None:
        self.settings = settings
        # Rendered once, from the settings alone, so that answering it cannot fail.
        self.fallback_document = self.render(fallback("the answer could not be rendered"))

    def render(self, step: Step) -> str:
        """The TwiML document for ``step``; RenderError if Twilio could not parse it."""
        document = self._build(step)
        if has_xml_invalid(document):
            raise RenderError("the document would hold characters XML cannot carry")
        return document

    def _build(self, step: Step) -> str:
        response = VoiceResponse()
        if isinstance(step, Dial):
            self._dial_agent_number(response, step)
        elif isinstance(step, SipDial):
            self._dial_agent_sip(response, step)
        elif isinstance(step, Hangup):
            response.hangup()
        elif isinstance(step, Hold):
            self._hold(response, step)
        elif step.kind is RouteKind.SYSTEM:
            self._system(response, step)
        else:
            if step.kind is RouteKind.FALLBACK and self.settings.fallback_say:
                response.say(self.settings.fallback_say)
            self._to_agent(response, step)
        return str(response)

    def _transfer_dial(self, attempt: int, timeout: int) -> dict[str, object]:
        """The <Dial> options of a transfer to GenerativeAgent."""
        # answerOnBridge: the caller hears ringing until GenerativeAgent answers, and
        # the caller's leg stays ours (supervised) because an action URL follows the dial.
        options: dict[str, object] = {
            "action": action_url(attempt),
            "method": "POST",
            "timeout": timeout,
            "answer_on_bridge": True,
        }
        if self.settings.hangup_on_star:
            options["hangup_on_star"] = True
        if self.settings.agent_time_limit:
            options["time_limit"] = self.settings.agent_time_limit
        return options

    def _dial_agent_number(self, response: VoiceResponse, step: Dial) -> None:
        number = dialable_number(step.number)
        if number is None:
            raise RenderError("the transfer number is not an E.164 number")
        response.dial(**self._transfer_dial(step.attempt, step.timeout)).number(number)

    def _dial_agent_sip(self, response: VoiceResponse, step: SipDial) -> None:
        options = self._transfer_dial(step.attempt, step.timeout)
        options.update(refer_url=refer_url(step.attempt), refer_method="POST")
        uri = sip_target(step)
        password = self.settings.sip_password
        credentials: dict[str, str] = {}
        if self.settings.sip_username and password is not None:
            credentials = {"username": self.settings.sip_username, "password": password.reveal()}
        response.dial(**options).sip(uri, **credentials)

    def _hold(self, response: VoiceResponse, step: Hold) -> None:
        # Sound while the context is read, then straight back: no request waits on the API.
        if self.settings.hold_audio_url:
            response.play(self.settings.hold_audio_url)
        else:
            response.say(self.settings.hold_say)
        response.redirect(context_url(step.attempt, step.call_id), method="POST")

    def _system(self, response: VoiceResponse, route: Route) -> None:
        url = self.settings.system_return_url
        if not url:
            if self.settings.goodbye_say:
                response.say(self.settings.goodbye_say)
            response.hangup()
            return
        params = [("transferType", route.transfer_type or "SYSTEM")]
        if route.current_task_name:
            params.append(("currentTaskName", route.current_task_name))
        params += [(f"tv_{k}", v) for k, v in route.transfer_variables.items()]
        params += [(f"rv_{k}", v) for k, v in route.reference_variables.items()]
        response.redirect(_with_query(url, params), method="POST")

    def _to_agent(self, response: VoiceResponse, route: Route) -> None:
        destination = self.settings.agent_destination
        if route.destination:
            try:
                destination = Destination.parse(route.destination)
            except ValueError:
                log.error("router chose an invalid destination; using AGENT_DESTINATION")
        if destination.kind is DestinationKind.QUEUE:
            self._enqueue(response, destination.value, route)
            return
        dial = response.dial(answer_on_bridge=True)
        if destination.kind is DestinationKind.NUMBER:
            dial.number(destination.value)
        elif destination.kind is DestinationKind.SIP:
            dial.sip(_sip_with_headers(destination.value, route))
        else:
            client = dial.client()
            client.identity(destination.value)
            for name, value in _agent_parameters(route):
                client.parameter(name=name, value=value)

    def _enqueue(self, response: VoiceResponse, queue: str, route: Route) -> None:
        if not self.settings.workflow_sid:
            response.enqueue(queue)
            return
        attributes = {
            "queue": queue,
            "transferType": route.transfer_type,
            "currentTaskName": route.current_task_name,
            "transferVariables": route.transfer_variables,
            "referenceVariables": route.reference_variables,
            "fallbackReason": route.reason if route.kind is RouteKind.FALLBACK else None,
        }
        enqueue = response.enqueue(None, workflow_sid=self.settings.workflow_sid)
        enqueue.task(json.dumps({k: v for k, v in attributes.items() if v}, sort_keys=True))


def _agent_parameters(route: Route) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    if route.transfer_type:
        params.append(("transferType", route.transfer_type))
    if route.current_task_name:
        params.append(("currentTaskName", route.current_task_name))
    params += [(f"tv_{k}", v) for k, v in route.transfer_variables.items()]
    params += [(f"rv_{k}", v) for k, v in route.reference_variables.items()]
    return params


def _sip_with_headers(uri: str, route: Route) -> str:
    """The SIP URI with X-GA-* headers, within Twilio's custom-header budget."""
    headers: list[tuple[str, str]] = []
    if route.transfer_type:
        headers.append(("X-GA-transferType", route.transfer_type))
    if route.current_task_name:
        headers.append(("X-GA-currentTaskName", route.current_task_name))
    headers += [(f"X-GA-tv-{k}", v) for k, v in route.transfer_variables.items()]
    headers += [(f"X-GA-rv-{k}", v) for k, v in route.reference_variables.items()]
    valid = [(n, v) for n, v in headers if _HEADER_TOKEN.fullmatch(n.removeprefix("X-GA-"))]
    fitted = fit_headers(valid, TWILIO_HEADER_BUDGET)
    if fitted.dropped:
        log.warning(
            "SIP headers over %d characters: %d dropped", TWILIO_HEADER_BUDGET, len(fitted.dropped)
        )
    return sip_uri_with_headers(uri, fitted.kept)


def _with_query(url: str, params: list[tuple[str, str]]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + params
    return urlunsplit(parts._replace(query=urlencode(query)))
