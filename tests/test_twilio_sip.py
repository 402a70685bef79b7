"""SIP hand-offs through the Twilio front, end to end: the real app on a socket, the
simulator playing Twilio and ASAPP's SIP side, the sandbox playing the API."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from adapter.config import Secret
from adapter.demo.simulator import DEFAULT_SIP_RETURN_URI, AgentLeg, CallScript
from adapter.flow import FlowPolicy, Outcome, RouteKind, SipReturn, TransferMode
from adapter.genagent.models import ReturnTransferType
from adapter.sandbox import SandboxServer
from adapter.sip import SipTransferSettings, parse_refer_to
from adapter.sip.headers import TWILIO_HEADER_BUDGET
from tests.twilio_stack import AGENT, RETURN_URL, Stack, call_params, start_stack, stop_stack, twiml

ASAPP_URI = "sip:genagent@sip.asapp.example.com"
AGENT_OUT = {"transferType": "AGENT", "transferVariables": {"reason": "dispute"}}
SYSTEM_OUT = {
    "transferType": "SYSTEM",
    "transferVariables": {"next": "callback"},
    "referenceVariables": {"balance": "12.50"},
}


def sip_policy(mode: TransferMode = TransferMode.SIP_API, **sip: Any) -> FlowPolicy:
    settings = SipTransferSettings(
        mode=mode,
        asapp_uri=ASAPP_URI,
        asapp_domain="sip:headers.asapp.example.com",
        return_uri=DEFAULT_SIP_RETURN_URI,
        **sip,
    )
    return FlowPolicy(create_deadline=1.5, context_wait=1.0, poll_interval=0.1, sip=settings)


@pytest.fixture
def make_sip_stack(sandbox: SandboxServer, tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    stacks: list[Stack] = []

    def make(flow: FlowPolicy | None = None, **twilio: Any) -> Stack:
        name = f"sip-{len(stacks)}.sqlite3"
        running = start_stack(sandbox, tmp_path, name, flow=flow or sip_policy(), **twilio)
        stacks.append(running)
        return running

    yield make
    for running in stacks:
        stop_stack(running)


@pytest.fixture
def stack(make_sip_stack: Callable[..., Stack]) -> Stack:
    return make_sip_stack()


def returned_query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def test_api_mode_bye_dials_sip_with_the_transfer_id_and_routes(stack: Stack) -> None:
    result = stack.sim.play(CallScript(legs=(AgentLeg(output=AGENT_OUT),)))
    dial = result.documents[0].find("Dial")
    assert dial is not None
    assert dial.get("referUrl") == "/twilio/sip-refer?attempt=1"
    assert dial.get("action") == "/twilio/dial-result?attempt=1"
    sid = result.call_sid
    assert result.sip_dialed == [f"{ASAPP_URI}?X-ASAPP-CallTransferId={sid}-1"]
    assert result.final_target == f"number {AGENT}"
    record = stack.record(sid)
    assert record.outcome is Outcome.AGENT_RETURNED
    assert record.attempts[0].returned_by is SipReturn.BYE
    (transfer,) = stack.transfers()
    assert transfer["type"] == "SIP"
    assert transfer["sip"]["returnURI"] == f"{DEFAULT_SIP_RETURN_URI};transfer={sid}-1"


def test_api_mode_refer_routes_from_the_fetched_context_once(stack: Stack) -> None:
    result = stack.sim.play(CallScript(legs=(AgentLeg(output=SYSTEM_OUT, sip_return="REFER"),)))
    assert result.final_verb == "Redirect"
    query = returned_query(result.final_target)
    assert query["transferType"] == ["SYSTEM"]
    assert query["tv_next"] == ["callback"]
    assert query["rv_balance"] == ["12.50"]
    sid = result.call_sid
    assert stack.record(sid).attempts[0].returned_by is SipReturn.REFER
    target = f"{DEFAULT_SIP_RETURN_URI};transfer={sid}-1"
    params = call_params(sid, CallStatus="in-progress", ReferTransferTarget=target)
    again = twiml(stack.post("/twilio/sip-refer?attempt=1", params))  # redelivered
    redirect = again.find("Redirect")
    assert redirect is not None
    assert (redirect.text or "").startswith(RETURN_URL.split("?")[0])
    assert len(stack.transfers()) == 1


def test_api_mode_invite_routes_the_new_leg_and_ends_the_first(stack: Stack) -> None:
    leg = AgentLeg(output=AGENT_OUT, sip_return="INVITE")
    result = stack.sim.play(CallScript(legs=(leg,)))
    assert result.invite_leg
    assert result.invite_leg != result.call_sid
    assert result.final_target == f"number {AGENT}"
    assert result.first_leg_end == "Hangup"  # the caller talks through the INVITE leg
    sid = result.call_sid
    record = stack.record(sid)
    assert record.attempts[0].returned_by is SipReturn.INVITE
    assert record.route is not None
    assert record.route.kind is RouteKind.AGENT
    invite = call_params(result.invite_leg, To=f"{DEFAULT_SIP_RETURN_URI};transfer={sid}-1")
    again = twiml(stack.post("/twilio/sip-return", invite))  # a redelivered INVITE webhook
    assert again.findtext("Dial/Number") == AGENT


def test_headers_mode_per_hand_off_sends_context_and_routes_from_the_refer(stack: Stack) -> None:
    leg = AgentLeg(output=SYSTEM_OUT, sip_return="REFER")
    query = {"mode": "sip-headers", "task": "billing", "iv_account": "42", "customer": "c-9"}
    result = stack.sim.play(CallScript(legs=(leg,), query=query))
    headers = dict(parse_refer_to(result.sip_dialed[0]).headers)
    assert headers == {
        "X-GA-taskName": "billing",
        "X-GA-extConversationId": result.call_sid,
        "X-GA-customerId": "c-9",
        "X-GA-iv-account": "42",
    }
    assert stack.transfers() == []  # no API call at all
    returned = returned_query(result.final_target)
    assert returned["transferType"] == ["SYSTEM"]
    assert returned["tv_next"] == ["callback"]
    assert returned["rv_balance"] == ["12.50"]


def test_headers_mode_invite_routes_from_its_headers(stack: Stack) -> None:
    leg = AgentLeg(output=AGENT_OUT, sip_return="INVITE")
    result = stack.sim.play(CallScript(legs=(leg,), query={"mode": "sip-headers"}))
    assert result.final_target == f"number {AGENT}"
    assert result.first_leg_end == "Hangup"
    route = stack.record(result.call_sid).route
    assert route is not None
    assert route.transfer_variables == {"reason": "dispute"}


@pytest.mark.parametrize(
    ("refer_to", "variables"),
    [
        ("sip:genagent-return@adapter.sip.twilio.com", {}),
        ("<sip:r@h?X-GA-transfer=LATER&X-GA-tv-why=unsure%20really>", {"why": "unsure really"}),
        ("sip:r@h?X-GA-tv-a=1&X-GA-tv-a=2&%zz=1&X-GA-transfer", {"a": "1"}),
    ],
)
def test_a_refer_without_a_usable_transfer_goes_to_the_fallback_with_its_variables(
    stack: Stack, refer_to: str, variables: dict[str, str]
) -> None:
    leg = AgentLeg(output=SYSTEM_OUT, sip_return="REFER", refer_to=refer_to)
    result = stack.sim.play(CallScript(legs=(leg,), query={"mode": "sip-headers"}))
    assert result.final_target == f"number {AGENT}"
    assert result.said[-1].startswith("Please hold")
    record = stack.record(result.call_sid)
    assert record.outcome is Outcome.FALLBACK
    assert record.route is not None
    assert record.route.transfer_variables == variables


def test_caller_hang_up_during_a_sip_hand_off(stack: Stack) -> None:
    result = stack.sim.play(CallScript(legs=(AgentLeg(ending="caller-hangs-up"),)))
    assert result.final == "the caller hung up"
    assert stack.record(result.call_sid).outcome is Outcome.CALLER_HUNG_UP


def test_busy_sip_side_is_retried_in_the_same_conversation(stack: Stack) -> None:
    legs = (AgentLeg(answer="busy"), AgentLeg(answer="failed"), AgentLeg(output=AGENT_OUT))
    result = stack.sim.play(CallScript(legs=legs))
    sid = result.call_sid
    assert [uri.rsplit("=", 1)[1] for uri in result.sip_dialed] == [f"{sid}-{n}" for n in (1, 2, 3)]
    assert {t["externalConversationId"] for t in stack.transfers()} == {sid}
    assert result.final_target == f"number {AGENT}"
    outcomes = [a.outcome for a in stack.record(sid).attempts]
    assert outcomes == [Outcome.BUSY, Outcome.FAILED, Outcome.AGENT_RETURNED]


def test_busy_every_time_falls_back(stack: Stack) -> None:
    result = stack.sim.play(CallScript(legs=(AgentLeg(answer="busy"),) * 3))
    assert len(result.sip_dialed) == 3
    assert result.final_target == f"number {AGENT}"
    assert stack.record(result.call_sid).outcome is Outcome.FALLBACK


def test_a_sip_hand_off_after_a_pstn_one(make_sip_stack: Callable[..., Stack]) -> None:
    stack = make_sip_stack(sip_policy(TransferMode.PHONE_NUMBER))
    legs = (AgentLeg(output=SYSTEM_OUT), AgentLeg(output=AGENT_OUT, sip_return="REFER"))
    result = stack.sim.play(CallScript(legs=legs, again=({"mode": "sip-api"},)))
    assert len(result.dialed) == 1
    assert len(result.sip_dialed) == 1
    assert result.final_target == f"number {AGENT}"
    record = stack.record(result.call_sid)
    assert [h.mode for h in record.handoffs] == [TransferMode.PHONE_NUMBER, TransferMode.SIP_API]
    assert [h.route.kind for h in record.handoffs if h.route] == [RouteKind.SYSTEM, RouteKind.AGENT]
    assert {t["externalConversationId"] for t in stack.transfers()} == {result.call_sid}


def test_headers_over_twilios_budget_drop_input_variables_only(stack: Stack) -> None:
    query = {"mode": "sip-headers", "task": "t"} | {f"iv_v{n}": "x" * 60 for n in range(30)}
    result = stack.sim.play(CallScript(legs=(AgentLeg(sip_return="REFER"),), query=query))
    uri = result.sip_dialed[0]
    headers = dict(parse_refer_to(uri).headers)
    assert len(uri.split("?", 1)[1]) < TWILIO_HEADER_BUDGET
    assert headers["X-GA-taskName"] == "t"
    assert 0 < sum(name.startswith("X-GA-iv-") for name in headers) < 30


def test_sip_credentials_go_on_the_sip_noun(make_sip_stack: Callable[..., Stack]) -> None:
    stack = make_sip_stack(sip_username="adapter", sip_password=Secret("pw-123"))
    result = stack.sim.play(CallScript(legs=(AgentLeg(output=AGENT_OUT),)))
    sip = result.documents[0].find("Dial/Sip")
    assert sip is not None
    assert (sip.get("username"), sip.get("password")) == ("adapter", "pw-123")


def test_invite_return_type_and_credentials_reach_the_api(
    make_sip_stack: Callable[..., Stack],
) -> None:
    from adapter.genagent.models import InviteAuthentication

    auth = InviteAuthentication("ga", "invite-pw")
    policy = sip_policy(return_type=ReturnTransferType.INVITE, invite_auth=auth)
    stack = make_sip_stack(policy)
    result = stack.sim.play(CallScript(legs=(AgentLeg(sip_return="INVITE"),)))
    (transfer,) = stack.transfers()
    assert transfer["sip"]["returnTransferType"] == "INVITE"
    assert transfer["sip"]["returnInviteAuthentication"]["username"] == "ga"
    assert result.final_verb == "Redirect"


def new_sid() -> str:
    return "CA" + uuid.uuid4().hex


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"ReferTransferTarget": ""},
        {"ReferTransferTarget": "\x00" * 5000},
        {"ReferTransferTarget": "<sip:%ff%fe?X-GA-transfer=AGENT&X-GA-tv-\u00e9=1"},
    ],
)
def test_malformed_refer_webhooks_answer_twiml(stack: Stack, params: dict[str, str]) -> None:
    response = stack.post("/twilio/sip-refer?attempt=1", call_params(new_sid(), **params))
    assert twiml(response).find("Dial") is not None or twiml(response).find("Redirect") is not None


@pytest.mark.parametrize(
    "to",
    [
        "",
        DEFAULT_SIP_RETURN_URI,
        f"{DEFAULT_SIP_RETURN_URI};transfer=not-a-call-1",
        f"{DEFAULT_SIP_RETURN_URI};transfer=CA{'0' * 32}-1",
        "<" * 3000,
    ],
)
def test_unknown_or_malformed_invite_returns_go_to_the_fallback(stack: Stack, to: str) -> None:
    root = twiml(stack.post("/twilio/sip-return", call_params(new_sid(), To=to)))
    assert root.findtext("Dial/Number") == AGENT


def test_unsigned_sip_webhooks_are_refused(stack: Stack) -> None:
    for path in ("/twilio/sip-refer?attempt=1", "/twilio/sip-return"):
        response = stack.post(path, call_params(new_sid()), signature="bad")
        assert response.status_code == 403
        bad_sid = stack.post(path, call_params("CA-bad"))
        assert bad_sid.status_code == 400


def test_the_call_history_tells_a_sip_hand_off_without_caller_values(stack: Stack) -> None:
    from adapter.history.render import story_lines
    from adapter.history.view import read_call

    leg = AgentLeg(output=SYSTEM_OUT, sip_return="REFER")
    query = {"mode": "sip-headers", "iv_secretcode": "987654321"}
    result = stack.sim.play(CallScript(legs=(AgentLeg(answer="busy"), leg), query=query))
    stored = stack.store.get(result.call_sid)
    assert stored is not None
    text = "\n".join(story_lines(read_call(stored).story(time.time())))
    assert "hand-off 1 by sip-headers" in text
    assert f"#2 {result.call_sid}-2: agent-returned returned by REFER" in text
    assert "987654321" not in text
    assert "12.50" not in text


def test_an_invite_leg_holds_while_the_context_lags_then_is_routed(
    make_sip_stack: Callable[..., Stack],
) -> None:
    policy = sip_policy()
    lagging = FlowPolicy(context_wait=6.0, poll_interval=0.2, hold_after=0.3, sip=policy.sip)
    stack = make_sip_stack(lagging)
    stack.faults(completionLagMs=1500)
    result = stack.sim.play(CallScript(legs=(AgentLeg(output=AGENT_OUT, sip_return="INVITE"),)))
    redirects = [
        d.findtext("Redirect") or "" for d in result.documents if d.find("Redirect") is not None
    ]
    assert redirects
    assert all(f"call={result.call_sid}" in url for url in redirects)
    assert result.said  # hold audio, never silence
    assert result.final_target == f"number {AGENT}"
    assert stack.record(result.call_sid).route is not None
