"""The Twilio webhooks one request at a time: signatures, redelivery, restarts, TwiML shapes."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from twilio.request_validator import RequestValidator

from adapter.config import ConfigError
from adapter.demo.simulator import AgentLeg, CallScript
from adapter.flow import Outcome, Route, RouteContext, RouteKind
from adapter.sandbox import SandboxServer
from adapter.twilio.settings import Destination
from adapter.twilio.sids import new_call_sid
from adapter.web import WebSettings
from tests.twilio_stack import AUTH_TOKEN, Stack, call_params, start_stack, stop_stack, twiml


def complete(stack: Stack, number: str, output: dict) -> None:
    base = f"{stack.sandbox.url}/sandbox"
    transfer_id = stack.http.post(f"{base}/calls", json={"transferNumber": number}).json()["id"]
    stack.http.post(f"{base}/transfers/{transfer_id}/complete", json=output).raise_for_status()


def dial_number(document) -> str:  # type: ignore[no-untyped-def]
    number = document.findtext("Dial/Number")
    assert number
    return str(number)


# --- signatures -------------------------------------------------------------------------


def test_unsigned_request_is_403_and_creates_nothing(stack: Stack) -> None:
    response = stack.http.post(f"{stack.web.url}/twilio/voice", data=call_params(new_call_sid()))
    assert response.status_code == 403
    assert stack.transfers() == []


def test_wrong_signature_is_403(stack: Stack) -> None:
    response = stack.post(
        "/twilio/voice", call_params(new_call_sid()), signature="bm90IGEgc2lnbmF0dXJl"
    )
    assert response.status_code == 403
    assert stack.transfers() == []


def test_signature_for_another_url_is_403(stack: Stack) -> None:
    signed_elsewhere = f"{stack.web.url}/twilio/voice?task=other"
    response = stack.post("/twilio/voice", call_params(new_call_sid()), sign_url=signed_elsewhere)
    assert response.status_code == 403


def test_tampered_form_is_403(stack: Stack) -> None:
    params = call_params(new_call_sid())
    good = stack.post("/twilio/voice", params)  # establishes that the signing itself is right
    assert good.status_code == 200
    signature = RequestValidator(AUTH_TOKEN).compute_signature(
        f"{stack.web.url}/twilio/voice", params
    )
    tampered = stack.http.post(
        f"{stack.web.url}/twilio/voice",
        data={**params, "CallSid": new_call_sid()},
        headers={"X-Twilio-Signature": signature},
    )
    assert tampered.status_code == 403


def test_every_endpoint_checks_the_signature(stack: Stack) -> None:
    for path in ("/twilio/dial-result?attempt=1", "/twilio/status"):
        assert (
            stack.http.post(f"{stack.web.url}{path}", data=call_params(new_call_sid())).status_code
            == 403
        )


def test_repeated_form_keys_validate(stack: Stack) -> None:
    params = [*call_params(new_call_sid()).items(), ("Digits", "1"), ("Digits", "2")]
    assert stack.post("/twilio/voice", params).status_code == 200


def test_behind_a_proxy_the_public_url_is_signed(stack: Stack) -> None:
    public = "https://adapter.example.com/twilio/voice"
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "adapter.example.com"}
    response = stack.post(
        "/twilio/voice", call_params(new_call_sid()), sign_url=public, headers=headers
    )
    assert response.status_code == 200
    # Signed for the internal URL but forwarded from the public one: not what Twilio signed.
    internal = stack.post("/twilio/voice", call_params(new_call_sid()), headers=headers)
    assert internal.status_code == 403


def test_public_base_url_setting(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(public_base_url="https://calls.example.com", proxy_hops=0)
    ok = stack.post(
        "/twilio/voice?task=t",
        call_params(new_call_sid()),
        sign_url="https://calls.example.com/twilio/voice?task=t",
    )
    assert ok.status_code == 200
    assert stack.post("/twilio/voice", call_params(new_call_sid())).status_code == 403


def test_a_signature_over_the_url_with_its_default_port_validates(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(public_base_url="https://calls.example.com", proxy_hops=0)
    with_port = "https://calls.example.com:443/twilio/voice"
    assert (
        stack.post("/twilio/voice", call_params(new_call_sid()), sign_url=with_port).status_code
        == 200
    )
    other_port = "https://calls.example.com:8443/twilio/voice"
    assert (
        stack.post("/twilio/voice", call_params(new_call_sid()), sign_url=other_port).status_code
        == 403
    )


def test_a_signature_header_that_is_not_ascii_is_403(stack: Stack) -> None:
    response = stack.http.post(
        f"{stack.web.url}/twilio/voice",
        data=call_params(new_call_sid()),
        headers={"X-Twilio-Signature": "\u00e9t\u00e9=".encode("latin-1")},
    )
    assert response.status_code == 403
    assert stack.transfers() == []


# --- redelivery and restarts --------------------------------------------------------------


def test_redelivered_voice_webhook_gets_the_same_twiml_and_no_second_create(stack: Stack) -> None:
    params = call_params(new_call_sid())
    first = stack.post("/twilio/voice", params)
    second = stack.post("/twilio/voice", params)
    assert first.content == second.content
    assert len(stack.transfers()) == 1


def test_redelivered_dial_result_does_not_request_or_dial_twice(stack: Stack) -> None:
    call_sid = new_call_sid()
    number = dial_number(twiml(stack.post("/twilio/voice", call_params(call_sid))))
    action = call_params(call_sid, CallStatus="in-progress", DialCallStatus="no-answer")
    first = twiml(stack.post("/twilio/dial-result?attempt=1", action))
    again = twiml(stack.post("/twilio/dial-result?attempt=1", action))
    assert dial_number(first) == dial_number(again) != number
    assert len(stack.transfers()) == 2


def test_state_survives_a_worker_restart(sandbox: SandboxServer, tmp_path: Path) -> None:
    call_sid = new_call_sid()
    before = start_stack(sandbox, tmp_path)
    number = dial_number(twiml(before.post("/twilio/voice", call_params(call_sid))))
    stop_stack(before)  # the worker dies between the dial and the action callback

    complete_output = {"transferType": "AGENT", "transferVariables": {"k": "v"}}
    after = start_stack(sandbox, tmp_path)  # same SQLite file, new process state
    try:
        complete(after, number, complete_output)
        action = call_params(call_sid, CallStatus="in-progress", DialCallStatus="completed")
        document = twiml(after.post("/twilio/dial-result?attempt=1", action))
        assert document.findtext("Dial/Number") == "+15550100"
        assert after.record(call_sid).outcome is Outcome.AGENT_RETURNED
    finally:
        stop_stack(after)


def test_dial_result_for_an_unknown_call_falls_back(stack: Stack) -> None:
    action = call_params(new_call_sid(), CallStatus="in-progress", DialCallStatus="completed")
    document = twiml(stack.post("/twilio/dial-result?attempt=1", action))
    assert document.findtext("Dial/Number") == "+15550100"


def test_dial_result_without_attempt_falls_back(stack: Stack) -> None:
    call_sid = new_call_sid()
    twiml(stack.post("/twilio/voice", call_params(call_sid)))
    action = call_params(call_sid, CallStatus="in-progress", DialCallStatus="completed")
    document = twiml(stack.post("/twilio/dial-result", action))
    assert document.findtext("Dial/Number") == "+15550100"


def test_missing_call_sid_is_400(stack: Stack) -> None:
    params = call_params("x")
    del params["CallSid"]
    assert stack.post("/twilio/voice", params).status_code == 400


def test_status_callback_ends_a_call_in_flight(stack: Stack) -> None:
    call_sid = new_call_sid()
    other_sid = new_call_sid()
    twiml(stack.post("/twilio/voice", call_params(call_sid)))
    assert stack.store.active_ids() == [call_sid]
    response = stack.post("/twilio/status", call_params(call_sid, CallStatus="completed"))
    assert response.status_code == 204
    assert stack.store.active_ids() == []
    record = stack.record(call_sid)
    assert record.outcome is Outcome.CALLER_HUNG_UP
    assert record.attempts[0].outcome is Outcome.CALLER_HUNG_UP
    # A non-final status changes nothing.
    twiml(stack.post("/twilio/voice", call_params(other_sid)))
    stack.post("/twilio/status", call_params(other_sid, CallStatus="in-progress"))
    assert stack.store.active_ids() == [other_sid]


def test_healthz(stack: Stack) -> None:
    assert stack.http.get(f"{stack.web.url}/healthz").json() == {"status": "ok"}


# --- destinations and the router ------------------------------------------------------------

AGENT_OUTPUT = {
    "transferType": "AGENT",
    "currentTaskName": "billing",
    "transferVariables": {"reason": "dispute"},
    "referenceVariables": {"account": "42"},
}


def agent_route_document(stack: Stack, call_sid: str, output: dict | None = None):  # type: ignore[no-untyped-def]
    number = dial_number(twiml(stack.post("/twilio/voice", call_params(call_sid))))
    complete(stack, number, output or AGENT_OUTPUT)
    action = call_params(call_sid, CallStatus="in-progress", DialCallStatus="completed")
    return twiml(stack.post("/twilio/dial-result?attempt=1", action))


def test_sip_destination_carries_x_headers(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(agent_destination=Destination.parse("sip:queue@pbx.example.com"))
    uri = agent_route_document(stack, new_call_sid()).findtext("Dial/Sip")
    assert uri is not None
    parts = urlsplit(uri)
    assert f"{parts.scheme}:{parts.path}" == "sip:queue@pbx.example.com"
    assert parse_qs(parts.query) == {
        "X-GA-transferType": ["AGENT"],
        "X-GA-currentTaskName": ["billing"],
        "X-GA-tv-reason": ["dispute"],
        "X-GA-rv-account": ["42"],
    }


def test_sip_headers_stay_within_the_budget(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(agent_destination=Destination.parse("sip:q@pbx.example.com"))
    big = {f"v{n}": "x" * 100 for n in range(20)}
    uri = agent_route_document(
        stack, new_call_sid(), {"transferType": "AGENT", "transferVariables": big}
    )
    query = urlsplit(uri.findtext("Dial/Sip") or "").query
    assert 0 < len(query) <= 1024
    assert "X-GA-tv-v0" in query
    assert "X-GA-tv-v19" not in query


def test_client_destination_carries_parameters(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(agent_destination=Destination.parse("client:agent_desk"))
    client = agent_route_document(stack, new_call_sid()).find("Dial/Client")
    assert client is not None
    assert client.findtext("Identity") == "agent_desk"
    params = {p.get("name"): p.get("value") for p in client.findall("Parameter")}
    assert params == {
        "transferType": "AGENT",
        "currentTaskName": "billing",
        "tv_reason": "dispute",
        "rv_account": "42",
    }


def test_queue_destination_with_taskrouter(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(agent_destination=Destination.parse("queue:support"), workflow_sid="WW123")
    enqueue = agent_route_document(stack, new_call_sid()).find("Enqueue")
    assert enqueue is not None
    assert enqueue.get("workflowSid") == "WW123"
    assert json.loads(enqueue.findtext("Task") or "") == {
        "queue": "support",
        "transferType": "AGENT",
        "currentTaskName": "billing",
        "transferVariables": {"reason": "dispute"},
        "referenceVariables": {"account": "42"},
    }


def test_plain_queue_destination(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(agent_destination=Destination.parse("queue:support"))
    document = agent_route_document(stack, new_call_sid())
    assert document.findtext("Enqueue") == "support"


def vip_router(context: RouteContext) -> Route:
    """A custom router: SYSTEM returns whose balance is high go to a VIP queue."""
    transfer = context.transfer
    if transfer and transfer.output_context and "vip" in transfer.output_context.transfer_variables:
        return Route(RouteKind.AGENT, reason="vip", destination="queue:vip")
    return context.default


def broken_router(context: RouteContext) -> Route:
    raise RuntimeError("bug in the customer's router")


def test_custom_router_by_import_path(sandbox: SandboxServer, tmp_path: Path) -> None:
    env = {
        "GA_API_ID": "sandbox-id",
        "GA_API_SECRET": "sandbox-secret-value",
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "AGENT_DESTINATION": "+15550100",
        "ROUTER": "tests.test_twilio_webhooks:vip_router",
    }
    router = WebSettings.from_env(env).router
    assert router is vip_router
    stack = start_stack(sandbox, tmp_path, router=router)
    try:
        output = {"transferType": "SYSTEM", "transferVariables": {"vip": "yes"}}
        assert agent_route_document(stack, new_call_sid(), output).findtext("Enqueue") == "vip"
        # Calls the router does not claim keep the default route.
        assert agent_route_document(stack, new_call_sid()).findtext("Dial/Number") == "+15550100"
    finally:
        stop_stack(stack)


def test_a_failing_router_keeps_the_default(sandbox: SandboxServer, tmp_path: Path) -> None:
    call_sid = new_call_sid()
    stack = start_stack(sandbox, tmp_path, router=broken_router)
    try:
        document = agent_route_document(stack, call_sid)
        assert document.findtext("Dial/Number") == "+15550100"
        assert stack.record(call_sid).outcome is Outcome.AGENT_RETURNED
    finally:
        stop_stack(stack)


# --- configuration and logs -------------------------------------------------------------------


def test_missing_settings_are_named_together() -> None:
    with pytest.raises(ConfigError) as caught:
        WebSettings.from_env({"GA_API_SECRET": "top-secret-value", "AGENT_DESTINATION": "nope"})
    message = str(caught.value)
    for name in ("GA_API_ID", "TWILIO_AUTH_TOKEN", "AGENT_DESTINATION"):
        assert name in message
    assert "top-secret-value" not in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TRANSFER_COUNTRY", "USA"),
        ("SYSTEM_RETURN_URL", "ivr.example.com/return"),
        ("DIAL_TIMEOUT", "2"),
        ("TRANSFER_MAX_ATTEMPTS", "0"),
        ("HANGUP_ON_STAR", "maybe"),
        ("ROUTER", "no_such_module:route"),
        ("CALLER_FIELDS", "From:x,bad field"),
    ],
)
def test_malformed_settings_are_named(name: str, value: str) -> None:
    env = {
        "GA_API_ID": "i",
        "GA_API_SECRET": "s",
        "TWILIO_AUTH_TOKEN": "t",
        "AGENT_DESTINATION": "+15550100",
        name: value,
    }
    with pytest.raises(ConfigError, match=name):
        WebSettings.from_env(env)


def test_no_secret_or_phone_number_in_log_lines(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stack.faults(fail={"status": 503, "count": 1})
    result = stack.sim.play(
        CallScript(legs=(AgentLeg(output=AGENT_OUTPUT),), query={"iv_ssn": "123-45-6789"})
    )
    assert result.final_target == "number +15550100"
    # Lines of the simulator's and the control endpoints' own HTTP client are Twilio's
    # and the test's, not the adapter's.
    text = "\n".join(
        record.getMessage()
        for record in caplog.records
        if not ("/twilio/" in record.getMessage() or "/sandbox/" in record.getMessage())
    )
    assert "GenerativeAgent POST call-transfers failed" in text  # the retry was logged
    for secret in (AUTH_TOKEN, "sandbox-secret-value", "123-45-6789", "+1555", "+1999"):
        assert secret not in text
