"""Input hygiene of the Twilio webhooks: body size, CallSid shape, AccountSid, log lines.

Every request goes over a real socket to the app served by werkzeug (gunicorn is
covered in test_procfile.py).
"""

from __future__ import annotations

import logging
import string
from collections.abc import Callable
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from adapter.config import ConfigError
from adapter.demo.simulator import AgentLeg, CallScript, TwilioSimulator
from adapter.twilio.sids import is_account_sid, is_call_sid, new_call_sid
from adapter.twilio.views import MAX_BODY_BYTES
from adapter.web import WebSettings
from tests.chunked import post_chunked
from tests.twilio_stack import AUTH_TOKEN, Stack, call_params, twiml

ENDPOINTS = ("/twilio/voice", "/twilio/dial-result?attempt=1", "/twilio/status")
ACCOUNT = "AC" + "5f" * 16
HEX = string.hexdigits


# --- the shape of a SID --------------------------------------------------------------------


@given(st.text(alphabet=HEX, min_size=32, max_size=32))
def test_ca_and_32_hex_digits_is_a_call_sid(digits: str) -> None:
    assert is_call_sid("CA" + digits)
    assert is_account_sid("AC" + digits)
    assert not is_call_sid("AC" + digits)
    assert not is_call_sid("CA" + digits + "0")
    assert not is_call_sid("CA" + digits[1:])
    assert not is_call_sid("CA" + digits + "\n")


@given(st.text(max_size=40))
def test_anything_else_is_not_a_call_sid(text: str) -> None:
    expected = len(text) == 34 and text[:2] == "CA" and all(ch in HEX for ch in text[2:])
    assert is_call_sid(text) is expected


def test_new_call_sids_are_well_formed_and_distinct() -> None:
    sids = {new_call_sid() for _ in range(1000)}
    assert len(sids) == 1000
    assert all(is_call_sid(sid) for sid in sids)


# --- CallSid ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    ["", "CA1", "CA-anything", "ca" + "0" * 32, "CA" + "0" * 31, "CA" + "0" * 33, "CA" + "g" * 32],
)
def test_a_malformed_call_sid_is_400_on_every_endpoint(stack: Stack, bad: str) -> None:
    for path in ENDPOINTS:
        response = stack.post(path, call_params(bad, CallStatus="completed"))
        assert response.status_code == 400, path
    assert stack.transfers() == []
    assert stack.store.active_ids() == []


def test_a_recaptured_request_cannot_be_rekeyed_into_a_new_call_sid(stack: Stack) -> None:
    """The signature covers keys and values concatenated: {CallSid: X, CallStatus: ringing}
    and {CallSid: "XCallStatusringing"} sign the same."""
    sid = new_call_sid()
    url = f"{stack.web.url}/twilio/voice"
    captured = {"CallSid": sid, "CallStatus": "ringing"}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, captured)
    rekeyed = {"CallSid": sid + "CallStatusringing"}
    assert RequestValidator(AUTH_TOKEN).validate(url, rekeyed, signature)
    response = stack.post("/twilio/voice", rekeyed, signature=signature)
    assert response.status_code == 400
    assert stack.transfers() == []


def test_a_call_sid_with_a_line_break_is_refused_and_logged_on_one_line(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="adapter")
    forged = new_call_sid() + "\r\nINFO adapter.twilio call routed"
    assert stack.post("/twilio/status", call_params(forged)).status_code == 400
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("adapter")]
    assert any("malformed CallSid" in line for line in lines)
    assert not any("\r" in line or "\n" in line for line in lines)


# --- AccountSid ------------------------------------------------------------------------------


def test_account_sid_must_match_when_set(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(account_sid=ACCOUNT)
    ours = call_params(new_call_sid(), AccountSid=ACCOUNT)
    assert twiml(stack.post("/twilio/voice", ours)).find("Dial") is not None
    for path in ENDPOINTS:
        other = call_params(new_call_sid(), AccountSid="AC" + "0" * 32)
        assert stack.post(path, other).status_code == 403, path
        missing = call_params(new_call_sid())
        del missing["AccountSid"]
        assert stack.post(path, missing).status_code == 403, path
    assert len(stack.transfers()) == 1


def test_a_whole_call_from_the_configured_account(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(account_sid=ACCOUNT)
    sim = TwilioSimulator(
        stack.web.url, stack.sandbox.url, AUTH_TOKEN, http=stack.http, account_sid=ACCOUNT
    )
    result = sim.play(CallScript(legs=(AgentLeg(output={"transferType": "AGENT"}),)))
    assert result.final_target == "number +15550100"


def test_without_the_setting_any_account_is_accepted(stack: Stack) -> None:
    params = call_params(new_call_sid(), AccountSid="AC" + "1" * 32)
    assert stack.post("/twilio/voice", params).status_code == 200


@pytest.mark.parametrize("value", ["AC123", "CA" + "0" * 32, "AC" + "z" * 32, ACCOUNT + " x"])
def test_a_malformed_account_sid_setting_refuses_to_start(value: str) -> None:
    env = {
        "GA_API_ID": "i",
        "GA_API_SECRET": "s",
        "TWILIO_AUTH_TOKEN": "t",
        "AGENT_DESTINATION": "+15550100",
        "TWILIO_ACCOUNT_SID": value,
    }
    with pytest.raises(ConfigError, match="TWILIO_ACCOUNT_SID"):
        WebSettings.from_env(env)
    env["TWILIO_ACCOUNT_SID"] = ACCOUNT
    assert WebSettings.from_env(env).twilio.account_sid == ACCOUNT


# --- body size and the order of the checks ------------------------------------------------


def test_a_body_over_the_cap_is_413(stack: Stack) -> None:
    big = call_params(new_call_sid(), Padding="x" * MAX_BODY_BYTES)
    for path in ENDPOINTS:
        assert stack.post(path, big).status_code == 413, path
    # Exactly the cap is an ordinary webhook; one byte more is not.
    size = len(urlencode(call_params(new_call_sid(), Padding="")))
    fits = call_params(new_call_sid(), Padding="x" * (MAX_BODY_BYTES - size))
    assert len(urlencode(fits)) == MAX_BODY_BYTES
    assert stack.post("/twilio/voice", fits).status_code == 200
    over = {**fits, "Padding": fits["Padding"] + "x"}
    assert stack.post("/twilio/voice", over).status_code == 413


def test_a_chunked_body_over_the_cap_is_413(stack: Stack) -> None:
    url = f"{stack.web.url}/twilio/voice?attempt=1"
    params = call_params(new_call_sid(), Padding="x" * (2 * MAX_BODY_BYTES))
    body = urlencode(params).encode()
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    head = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
    assert post_chunked(url, head, body) == 413
    assert stack.transfers() == []
    # The same way of sending, under the cap, is served.
    small = call_params(new_call_sid())
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, small)
    head["X-Twilio-Signature"] = signature
    assert post_chunked(url, head, urlencode(small).encode()) == 200


def test_checks_run_in_order_size_signature_fields(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(account_sid=ACCOUNT)
    url = f"{stack.web.url}/twilio/voice"
    huge_unsigned = call_params("bad", Padding="x" * MAX_BODY_BYTES)
    assert stack.http.post(url, data=huge_unsigned).status_code == 413
    assert stack.http.post(url, data=call_params("bad")).status_code == 403
    bad_both = call_params("bad", AccountSid="AC" + "0" * 32)
    assert stack.post("/twilio/voice", bad_both).status_code == 400
    wrong_account = call_params(new_call_sid(), AccountSid="AC" + "0" * 32)
    assert stack.post("/twilio/voice", wrong_account).status_code == 403
