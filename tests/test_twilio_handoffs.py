"""Repeated hand-offs and hold audio through the Twilio front, end to end over sockets."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import httpx

from adapter.demo.simulator import AgentLeg, CallScript
from adapter.flow import FlowPolicy, Outcome, RouteKind
from tests.twilio_stack import AGENT, RETURN_URL, Stack, call_params, twiml

SYSTEM = {"transferType": "SYSTEM", "currentTaskName": "balance", "transferVariables": {"b": "1"}}
AGENT_OUTPUT = {"transferType": "AGENT", "transferVariables": {"reason": "dispute"}}
TOKEN = "I-Twilio-Idempotency-Token"
HOLD_SAY = "One moment, please."
LAGGING = FlowPolicy(create_deadline=1.5, context_wait=6.0, poll_interval=0.2, hold_after=0.5)


def new_sid() -> str:
    return "CA" + uuid.uuid4().hex


def voice(stack: Stack, sid: str, token: str | None, query: str = "") -> httpx.Response:
    headers = {TOKEN: token} if token else {}
    return stack.post(f"/twilio/voice{query}", call_params(sid), headers=headers)


def agent_completes(stack: Stack, number: str, output: dict[str, object]) -> None:
    connected = stack.http.post(
        f"{stack.sandbox.url}/sandbox/calls", json={"transferNumber": number}
    )
    connected.raise_for_status()
    control = f"{stack.sandbox.url}/sandbox/transfers/{connected.json()['id']}"
    stack.http.post(f"{control}/complete", json=output).raise_for_status()


def dial_result(stack: Stack, sid: str, attempt: int) -> httpx.Response:
    params = call_params(sid, CallStatus="in-progress", DialCallStatus="completed")
    return stack.post(f"/twilio/dial-result?attempt={attempt}", params)


def test_system_then_agent_routes_twice_in_one_conversation(stack: Stack) -> None:
    script = CallScript(
        legs=(AgentLeg(output=SYSTEM), AgentLeg(output=AGENT_OUTPUT)),
        again=({"task": "billing", "iv_step": "2"},),
    )
    result = stack.sim.play(script)

    assert len(result.returns) == 1
    assert parse_qs(urlsplit(result.returns[0]).query)["transferType"] == ["SYSTEM"]
    assert result.final_target == f"number {AGENT}"
    assert len(result.dialed) == 2
    assert result.dialed[0] != result.dialed[1]  # never a number of an earlier hand-off
    transfers = {t["id"]: t for t in stack.transfers()}
    sid = result.call_sid
    assert set(transfers) == {f"{sid}-1", f"{sid}-2"}
    assert {t["externalConversationId"] for t in transfers.values()} == {sid}
    assert transfers[f"{sid}-2"]["inputContext"]["taskName"] == "billing"
    assert transfers[f"{sid}-2"]["inputContext"]["inputVariables"] == {"step": "2"}

    record = stack.record(sid)
    assert [h.number for h in record.handoffs] == [1, 2]
    assert [h.route.kind.value for h in record.handoffs if h.route] == ["system", "agent"]
    assert [(a.number, a.handoff) for a in record.attempts] == [(1, 1), (2, 2)]
    assert record.outcome is Outcome.AGENT_RETURNED


def test_same_token_is_a_redelivery_another_token_a_new_hand_off(stack: Stack) -> None:
    sid = new_sid()
    first = twiml(voice(stack, sid, "token-1"))
    number = first.findtext("Dial/Number")
    assert number
    agent_completes(stack, number, SYSTEM)
    routed = dial_result(stack, sid, 1)
    assert twiml(routed).findtext("Redirect", "").startswith(RETURN_URL.split("?")[0])

    # Twilio retrying the first hand-off's webhook: where that hand-off ended, no new transfer.
    again = voice(stack, sid, "token-1")
    assert again.content == routed.content
    assert len(stack.transfers()) == 1

    # The IVR hands the caller over again: a new transfer, a new number.
    second = voice(stack, sid, "token-2")
    second_number = twiml(second).findtext("Dial/Number")
    assert second_number
    assert second_number != number
    assert twiml(second).find("Dial").get("action") == "/twilio/dial-result?attempt=2"
    # ... and a retry of that one gets the same answer with no API call.
    assert voice(stack, sid, "token-2").content == second.content
    assert sorted(t["id"] for t in stack.transfers()) == [f"{sid}-1", f"{sid}-2"]


def test_without_a_token_the_phase_decides(stack: Stack) -> None:
    sid = new_sid()
    first = voice(stack, sid, None)
    assert voice(stack, sid, None).content == first.content  # in flight: a redelivery
    number = twiml(first).findtext("Dial/Number")
    assert number
    agent_completes(stack, number, SYSTEM)
    twiml(dial_result(stack, sid, 1))
    after = twiml(voice(stack, sid, None))  # routed: a new hand-off
    assert after.find("Dial").get("action") == "/twilio/dial-result?attempt=2"
    assert len(stack.transfers()) == 2


def test_a_later_hand_off_may_name_another_conversation(stack: Stack) -> None:
    script = CallScript(
        legs=(AgentLeg(output=SYSTEM), AgentLeg(output=SYSTEM)),
        query={"conversation": "conv-a"},
        again=({"conversation": "conv-b"},),
    )
    result = stack.sim.play(script)
    by_id = {t["id"]: t["externalConversationId"] for t in stack.transfers()}
    assert by_id == {f"{result.call_sid}-1": "conv-a", f"{result.call_sid}-2": "conv-b"}


def test_each_hand_off_has_its_own_attempt_budget(stack: Stack) -> None:
    # Three attempts (the test policy's default) for the first hand-off, three for the second.
    legs = (
        AgentLeg(answer="no-answer"),
        AgentLeg(answer="busy"),
        AgentLeg(output=SYSTEM),
        AgentLeg(answer="no-answer"),
        AgentLeg(answer="failed"),
        AgentLeg(output=AGENT_OUTPUT),
    )
    result = stack.sim.play(CallScript(legs=legs, again=({},)))
    assert result.final_target == f"number {AGENT}"
    record = stack.record(result.call_sid)
    assert [a.handoff for a in record.attempts] == [1, 1, 1, 2, 2, 2]
    assert len({a.transfer_id for a in record.attempts}) == 6
    assert [h.outcome for h in record.handoffs] == [Outcome.AGENT_RETURNED] * 2


def test_a_lagging_context_puts_the_caller_on_hold_then_routes(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(flow=LAGGING)
    stack.faults(completionLagMs=4000)  # the transfer says ONGOING for 4 s after the hang-up
    result = stack.sim.play(CallScript(legs=(AgentLeg(output=SYSTEM),)))
    assert result.final_verb == "Redirect"
    assert result.said
    assert set(result.said) == {HOLD_SAY}
    hold = result.documents[1]  # the dial result's answer: sound, then back to the adapter
    assert [verb.tag for verb in hold] == ["Say", "Redirect"]
    assert hold.findtext("Redirect") == "/twilio/context?attempt=1"
    record = stack.record(result.call_sid)
    route = record.handoffs[0].route
    assert route is not None
    assert route.kind is RouteKind.SYSTEM
    assert record.attempts[0].outcome is Outcome.AGENT_RETURNED
    assert any(event == "holding" for _, event, _ in record.timeline)


def test_hold_audio_url_is_played(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(flow=LAGGING, hold_audio_url="https://cdn.example.com/hold.mp3")
    stack.faults(completionLagMs=1500)
    result = stack.sim.play(CallScript(legs=(AgentLeg(output=AGENT_OUTPUT),)))
    assert result.final_target == f"number {AGENT}"
    assert result.played
    assert set(result.played) == {"https://cdn.example.com/hold.mp3"}
    assert result.said == []


def test_context_polls_are_idempotent(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(flow=LAGGING)
    stack.faults(completionLagMs=800)
    sid = new_sid()
    number = twiml(voice(stack, sid, "t1")).findtext("Dial/Number")
    assert number
    agent_completes(stack, number, SYSTEM)
    held = twiml(dial_result(stack, sid, 1))
    assert held.findtext("Redirect") == "/twilio/context?attempt=1"
    poll = call_params(sid, CallStatus="in-progress")
    answers = []
    for _ in range(100):
        time.sleep(0.05)  # Twilio says the hold message first
        answer = stack.post("/twilio/context?attempt=1", poll)
        answers.append(answer.content)
        if b"/twilio/context" not in answer.content:
            break
    decided = answers[-1]
    assert RETURN_URL.split("?")[0].encode() in decided
    # Redelivered and out-of-order polls get the decision, as does a redelivered dial result.
    assert stack.post("/twilio/context?attempt=1", poll).content == decided
    assert twiml(dial_result(stack, sid, 1)).findtext("Redirect") == "/twilio/context?attempt=1"
    assert stack.post("/twilio/context?attempt=7", poll).content == decided
    assert len(stack.transfers()) == 1


def test_a_context_that_never_completes_falls_back_after_the_wait(
    make_stack: Callable[..., Stack],
) -> None:
    policy = FlowPolicy(create_deadline=1.0, context_wait=1.0, poll_interval=0.2, hold_after=0.2)
    stack = make_stack(flow=policy)
    stack.faults(completionLagMs=60_000)
    result = stack.sim.play(CallScript(legs=(AgentLeg(output=SYSTEM),)))
    assert result.final_target == f"number {AGENT}"
    assert result.said[0] == HOLD_SAY
    record = stack.record(result.call_sid)
    assert record.attempts[0].outcome is Outcome.API_ERROR
    assert "ONGOING" in record.attempts[0].detail


def test_a_caller_who_hangs_up_on_hold_gets_nothing_more(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(flow=LAGGING)
    stack.faults(completionLagMs=60_000)
    sid = new_sid()
    number = twiml(voice(stack, sid, "t1")).findtext("Dial/Number")
    assert number
    agent_completes(stack, number, SYSTEM)
    twiml(dial_result(stack, sid, 1))
    gone = stack.post("/twilio/context?attempt=1", call_params(sid, CallStatus="completed"))
    assert [verb.tag for verb in twiml(gone)] == ["Hangup"]
