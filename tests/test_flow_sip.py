"""SIP hand-offs in the flow, against the sandbox and a real store: the dial, the three
returns (BYE, REFER, INVITE), retries, the fallback, and idempotent returns."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapter.flow import (
    CallStart,
    DialResult,
    FlowPolicy,
    Hangup,
    Hold,
    Outcome,
    Route,
    RouteKind,
    SipDial,
    SipReturn,
    TransferFlow,
    TransferMode,
)
from adapter.flow.model import CallRecord, step_from_json, step_to_json
from adapter.genagent import GenAgentClient
from adapter.genagent.models import ReturnTransferType
from adapter.sandbox import SandboxServer
from adapter.sip import SipTransferSettings, transfer_id_in
from adapter.store import CallStore, open_store
from tests.conftest import FAST_RETRIES, settings_for

ASAPP_URI = "sip:genagent@sip.asapp.example.com"
RETURN_URI = "sip:return@adapter.sip.twilio.com;User-to-User=UUI-1"
SIP = SipTransferSettings(
    mode=TransferMode.SIP_API,
    asapp_uri=ASAPP_URI,
    asapp_domain="sip:headers.asapp.example.com",
    return_uri=RETURN_URI,
    return_type=ReturnTransferType.REFER,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CallStore]:
    opened = open_store(f"sqlite:///{tmp_path / 'flow.sqlite3'}")
    yield opened
    opened.close()


@pytest.fixture
def flow(sandbox: SandboxServer, store: CallStore) -> Iterator[TransferFlow]:
    with GenAgentClient(settings_for(sandbox.url), policy=FAST_RETRIES) as ga:
        yield TransferFlow(ga, store, FlowPolicy(poll_interval=0.05, sip=SIP))


def control(sandbox: SandboxServer, path: str, body: Any = None) -> dict[str, Any]:
    response = httpx.post(f"{sandbox.url}/sandbox/{path}", json=body or {})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def play_asapp(sandbox: SandboxServer, dial: SipDial, output: dict[str, Any]) -> dict[str, Any]:
    """ASAPP receives the SIP call with its headers, talks, and completes."""
    control(sandbox, "sip-calls", {"headers": dict(dial.headers)})
    return control(sandbox, f"transfers/{dial.transfer_id}/complete", output)


def start(flow: TransferFlow, call_id: str = "call-1", **extra: Any) -> SipDial:
    step = flow.start(CallStart(call_id, None, "US", task_name="billing", **extra))
    assert isinstance(step, SipDial), step
    return step


def record(flow: TransferFlow, call_id: str = "call-1") -> CallRecord:
    found = flow.load(call_id)
    assert found is not None
    return found


OUTPUT = {
    "transferType": "SYSTEM",
    "transferVariables": {"next_action": "callback"},
    "referenceVariables": {"balance": "12.50"},
}


def test_api_mode_returned_by_bye_fetches_and_routes(
    flow: TransferFlow, sandbox: SandboxServer
) -> None:
    dial = start(flow, input_variables={"account": "42"})
    assert dial.uri == ASAPP_URI
    assert dial.mode == "sip-api"
    assert dial.headers == (("X-ASAPP-CallTransferId", "call-1-1"),)
    created = play_asapp(sandbox, dial, {"transferType": "AGENT"})
    assert created["sip"]["returnTransferType"] == "REFER"
    assert transfer_id_in(created["sip"]["returnURI"]) == "call-1-1"
    assert created["sip"]["returnURI"].startswith(RETURN_URI)
    route = flow.dial_ended("call-1", 1, DialResult.AGENT_DISCONNECTED)
    assert isinstance(route, Route)
    assert route.kind is RouteKind.AGENT
    attempt = record(flow).attempts[0]
    assert (attempt.outcome, attempt.returned_by) == (Outcome.AGENT_RETURNED, SipReturn.BYE)


def test_api_mode_returned_by_refer_routes_once(flow: TransferFlow, sandbox: SandboxServer) -> None:
    dial = start(flow)
    created = play_asapp(sandbox, dial, OUTPUT)
    refer_to = f"<{created['sip']['returnURI']}>"  # sent back exactly as given
    route = flow.sip_refer("call-1", refer_to)
    assert isinstance(route, Route)
    assert route.kind is RouteKind.SYSTEM
    assert route.transfer_variables == {"next_action": "callback"}
    assert route.reference_variables == {"balance": "12.50"}
    assert flow.sip_refer("call-1", refer_to) == route  # a redelivered REFER
    assert flow.dial_ended("call-1", 1, DialResult.AGENT_DISCONNECTED) == route
    saved = record(flow)
    assert saved.attempts[0].returned_by is SipReturn.REFER
    assert [h.route for h in saved.handoffs] == [route]


def test_api_mode_returned_by_invite_routes_the_new_leg(
    flow: TransferFlow, sandbox: SandboxServer
) -> None:
    dial = start(flow)
    play_asapp(sandbox, dial, {"transferType": "AGENT"})
    route = flow.sip_invite("call-1", 1)
    assert isinstance(route, Route)
    assert route.kind is RouteKind.AGENT
    assert flow.sip_invite("call-1", 1) == route  # a redelivered INVITE webhook
    # The caller now talks through the INVITE leg: the first leg's end routes no one.
    assert flow.dial_ended("call-1", 1, DialResult.AGENT_DISCONNECTED) == Hangup()
    assert record(flow).attempts[0].returned_by is SipReturn.INVITE


def test_an_invite_while_the_context_lags_holds_on_the_call_not_the_leg(
    flow: TransferFlow, sandbox: SandboxServer
) -> None:
    dial = start(flow)
    control(sandbox, "faults", {"completionLagMs": 60_000})
    play_asapp(sandbox, dial, OUTPUT)
    held = flow.sip_invite("call-1", 1)
    assert isinstance(held, Hold)
    assert held.call_id == "call-1"
    again = flow.context_poll("call-1", held.attempt)
    assert isinstance(again, Hold)
    assert again.call_id == "call-1"


def test_sip_busy_retries_with_the_same_conversation_then_falls_back(
    flow: TransferFlow, sandbox: SandboxServer
) -> None:
    dial = start(flow)
    for attempt in (1, 2):
        step = flow.dial_ended("call-1", attempt, DialResult.BUSY)  # 486 from ASAPP's side
        assert isinstance(step, SipDial)
        assert step.attempt == attempt + 1
        assert step.headers == (("X-ASAPP-CallTransferId", f"call-1-{attempt + 1}"),)
    last = flow.dial_ended("call-1", 3, DialResult.FAILED)  # 503 / 408
    assert isinstance(last, Route)
    assert last.kind is RouteKind.FALLBACK
    legs = httpx.get(f"{sandbox.url}/sandbox/conversations/call-1").json()
    assert len(legs["legs"]) == 3
    assert dial.transfer_id == "call-1-1"
    saved = record(flow)
    assert [a.outcome for a in saved.attempts] == [Outcome.BUSY, Outcome.BUSY, Outcome.FAILED]


def test_caller_hang_up_during_a_sip_hand_off(flow: TransferFlow) -> None:
    start(flow)
    assert flow.dial_ended("call-1", 1, DialResult.CALLER_HUNG_UP) == Hangup()
    assert flow.sip_refer("call-1", RETURN_URI) == Hangup()  # too late: the call is over
    assert record(flow).outcome is Outcome.CALLER_HUNG_UP


def test_headers_mode_makes_no_api_call_and_routes_from_the_refer(
    flow: TransferFlow, sandbox: SandboxServer
) -> None:
    dial = start(
        flow,
        mode=TransferMode.SIP_HEADERS,
        customer_id="cust-9",
        input_variables={"account": "42"},
    )
    assert dial.uri == "sip:headers.asapp.example.com"
    assert dict(dial.headers) == {
        "X-GA-taskName": "billing",
        "X-GA-extConversationId": "call-1",
        "X-GA-customerId": "cust-9",
        "X-GA-iv-account": "42",
    }
    assert httpx.get(f"{sandbox.url}/sandbox/transfers").json()["transfers"] == []
    refer_to = (
        "sip:return@sbc.example.com?X-GA-extConId=call-1&X-GA-transfer=AGENT"
        "&X-GA-tv-queue=billing%20team&X-GA-rv-balance=12.50"
    )
    route = flow.sip_refer("call-1", refer_to)
    assert isinstance(route, Route)
    assert route.kind is RouteKind.AGENT
    assert route.transfer_variables == {"queue": "billing team"}
    assert route.reference_variables == {"balance": "12.50"}
    assert route.transfer_id == "call-1-1"
    assert flow.sip_refer("call-1", "sip:other?X-GA-transfer=SYSTEM") == route


@pytest.mark.parametrize(
    ("refer_to", "variables"),
    [
        ("sip:return@sbc.example.com", {}),
        ("sip:return@sbc.example.com?X-GA-transfer=MAYBE&X-GA-tv-why=unsure", {"why": "unsure"}),
        ("<sip:x?X-GA-tv-a=1&X-GA-tv-a=2", {"a": "1"}),
    ],
)
def test_headers_mode_refer_without_a_usable_transfer_falls_back_with_the_variables(
    flow: TransferFlow, refer_to: str, variables: dict[str, str]
) -> None:
    start(flow, mode=TransferMode.SIP_HEADERS)
    route = flow.sip_refer("call-1", refer_to)
    assert isinstance(route, Route)
    assert route.kind is RouteKind.FALLBACK
    assert route.transfer_variables == variables
    assert record(flow).attempts[0].outcome is Outcome.AGENT_RETURNED


def test_headers_mode_bye_has_no_context_so_falls_back(flow: TransferFlow) -> None:
    start(flow, mode=TransferMode.SIP_HEADERS)
    busy = flow.dial_ended("call-1", 1, DialResult.BUSY)
    assert isinstance(busy, SipDial)
    assert busy.attempt == 2
    assert dict(busy.headers)["X-GA-extConversationId"] == "call-1"
    route = flow.dial_ended("call-1", 2, DialResult.AGENT_DISCONNECTED)
    assert isinstance(route, Route)
    assert route.kind is RouteKind.FALLBACK


def test_a_sip_hand_off_after_a_pstn_one_resumes_the_conversation(
    flow: TransferFlow, sandbox: SandboxServer
) -> None:
    first = flow.start(CallStart("call-1", None, "US", token="t1", mode=TransferMode.PHONE_NUMBER))
    control(sandbox, "calls", {"transferNumber": first.number})  # type: ignore[union-attr]
    control(sandbox, "transfers/call-1-1/complete", {"transferType": "SYSTEM"})
    routed = flow.dial_ended("call-1", 1, DialResult.AGENT_DISCONNECTED)
    assert isinstance(routed, Route)
    assert routed.kind is RouteKind.SYSTEM
    second = start(flow, token="t2")  # the deployment's mode: sip-api
    assert second.attempt == 2
    assert second.transfer_id == "call-1-2"
    play_asapp(sandbox, second, {"transferType": "AGENT"})
    route = flow.sip_refer("call-1", f"{RETURN_URI};transfer=call-1-2")
    assert isinstance(route, Route)
    assert route.kind is RouteKind.AGENT
    legs = httpx.get(f"{sandbox.url}/sandbox/conversations/call-1").json()["legs"]
    assert [leg["id"] for leg in legs] == ["call-1-1", "call-1-2"]
    saved = record(flow)
    assert [h.mode for h in saved.handoffs] == [TransferMode.PHONE_NUMBER, TransferMode.SIP_API]
    assert flow.start(CallStart("call-1", None, "US", token="t2")) == route


def test_a_mode_without_its_settings_falls_back(sandbox: SandboxServer, store: CallStore) -> None:
    with GenAgentClient(settings_for(sandbox.url), policy=FAST_RETRIES) as ga:
        flow = TransferFlow(ga, store, FlowPolicy(sip=SipTransferSettings()))
        step = flow.start(CallStart("call-1", None, "US", mode=TransferMode.SIP_HEADERS))
    assert isinstance(step, Route)
    assert step.kind is RouteKind.FALLBACK
    assert "not configured" in step.reason


def test_a_redelivered_start_gets_the_pending_sip_dial(flow: TransferFlow) -> None:
    dial = start(flow, token="t1")
    again = flow.start(CallStart("call-1", None, "US", task_name="billing", token="t1"))
    assert again == dial


def test_returns_without_a_record_route_from_what_they_carry(flow: TransferFlow) -> None:
    route = flow.sip_refer("lost", "sip:r?X-GA-transfer=SYSTEM&X-GA-tv-a=1")
    assert isinstance(route, Route)
    assert route.kind is RouteKind.SYSTEM
    assert route.transfer_variables == {"a": "1"}
    unknown = flow.sip_invite("lost", None)
    assert isinstance(unknown, Route)
    assert unknown.kind is RouteKind.FALLBACK


def test_sip_steps_and_records_round_trip(flow: TransferFlow) -> None:
    dial = start(flow, mode=TransferMode.SIP_HEADERS, input_variables={"a": "é"})
    for step in (dial, Hold(2, 0.5, False, "call-1"), Hold(1, 0.5)):
        assert step_from_json(step_to_json(step)) == step
    saved = record(flow)
    assert CallRecord.from_json(saved.to_json()) == saved


def test_a_refer_after_its_bye_waits_with_the_caller(
    flow: TransferFlow, sandbox: SandboxServer
) -> None:
    dial = start(flow)
    control(sandbox, "faults", {"completionLagMs": 60_000})
    play_asapp(sandbox, dial, OUTPUT)
    held = flow.dial_ended("call-1", 1, DialResult.AGENT_DISCONNECTED)
    assert isinstance(held, Hold)
    again = flow.sip_refer("call-1", f"{RETURN_URI};transfer=call-1-1")
    assert isinstance(again, Hold)
    assert again.attempt == 1
    assert record(flow).route is None


def test_an_api_mode_return_without_a_record_reads_the_transfer_it_names(
    flow: TransferFlow, sandbox: SandboxServer, tmp_path: Path
) -> None:
    dial = start(flow, "lost-call")
    play_asapp(sandbox, dial, {"transferType": "AGENT"})
    with open_store(f"sqlite:///{tmp_path / 'empty.sqlite3'}") as empty:
        lost = TransferFlow(flow.client, empty, flow.policy)  # the record is gone: degraded
        refer = lost.sip_refer("lost-call", f"<{RETURN_URI};transfer=lost-call-1>")
        invite = lost.sip_invite("lost-call", 1)
        other = lost.sip_refer("lost-call", f"{RETURN_URI};transfer=another-call-1")
    assert isinstance(refer, Route)
    assert refer.kind is RouteKind.AGENT
    assert invite == refer
    assert isinstance(other, Route)
    assert other.kind is RouteKind.FALLBACK
