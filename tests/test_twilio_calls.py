"""Whole calls through the Twilio front: the simulator plays Twilio, the sandbox plays the agent."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest

from adapter.demo.simulator import AgentLeg, CallScript
from adapter.flow import FlowPolicy, Outcome, Phase
from tests.twilio_stack import AGENT, RETURN_URL, Stack

AGENT_OUTPUT = {
    "transferType": "AGENT",
    "currentTaskName": "billing",
    "transferVariables": {"reason": "dispute"},
    "referenceVariables": {"account": "42"},
}
SYSTEM_OUTPUT = {
    "transferType": "system",
    "currentTaskName": "balance",
    "transferVariables": {"balance": "120.50", "next": "menu 3"},
    "referenceVariables": {"intent": "balance"},
}


def test_first_answer_dials_the_transfer_number_supervised(stack: Stack) -> None:
    result = stack.sim.play(CallScript(legs=(AgentLeg(output=AGENT_OUTPUT),)))
    first = result.documents[0]
    [dial] = list(first)
    assert dial.tag == "Dial"
    assert dial.get("answerOnBridge") == "true"
    assert urlsplit(dial.get("action", "")).path == "/twilio/dial-result"
    assert parse_qs(urlsplit(dial.get("action", "")).query) == {"attempt": ["1"]}
    assert dial.get("method") == "POST"
    assert 5 <= int(dial.get("timeout", "0")) <= 20
    assert dial.get("hangupOnStar") is None
    assert dial.get("timeLimit") is None
    [transfer] = stack.transfers()
    assert dial.findtext("Number") == transfer["phoneNumber"]["transferNumber"]
    assert transfer["id"] == f"{result.call_sid}-1"
    assert transfer["externalConversationId"] == result.call_sid


def test_agent_escalation_dials_the_agent_destination(stack: Stack) -> None:
    result = stack.sim.play(CallScript(legs=(AgentLeg(output=AGENT_OUTPUT),)))
    assert result.final_verb == "Dial"
    assert result.final_target == f"number {AGENT}"
    assert result.said == []
    record = stack.record(result.call_sid)
    assert record.outcome is Outcome.AGENT_RETURNED
    assert record.route is not None
    assert record.route.transfer_variables == {"reason": "dispute"}
    assert [a.outcome for a in record.attempts] == [Outcome.AGENT_RETURNED]


def test_system_return_redirects_to_the_ivr_with_variables(stack: Stack) -> None:
    result = stack.sim.play(CallScript(legs=(AgentLeg(output=SYSTEM_OUTPUT),)))
    assert result.final_verb == "Redirect"
    target = urlsplit(result.final_target)
    assert f"{target.scheme}://{target.netloc}{target.path}" == RETURN_URL.split("?")[0]
    query = parse_qs(target.query)
    assert query == {
        "menu": ["main"],
        "transferType": ["SYSTEM"],
        "currentTaskName": ["balance"],
        "tv_balance": ["120.50"],
        "tv_next": ["menu 3"],
        "rv_intent": ["balance"],
    }
    redirect = result.documents[-1].find("Redirect")
    assert redirect is not None
    assert redirect.get("method") == "POST"


def test_system_without_return_url_says_goodbye(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(system_return_url=None, goodbye_say="Bye now.")
    result = stack.sim.play(CallScript(legs=(AgentLeg(output=SYSTEM_OUTPUT),)))
    assert [verb.tag for verb in result.documents[-1]] == ["Say", "Hangup"]
    assert result.said == ["Bye now."]


def test_caller_hang_up_during_the_agent_dials_nobody(stack: Stack) -> None:
    result = stack.sim.play(CallScript(legs=(AgentLeg(ending="caller-hangs-up"),)))
    assert result.final == "the caller hung up"
    assert len(stack.transfers()) == 1
    record = stack.record(result.call_sid)
    assert record.outcome is Outcome.CALLER_HUNG_UP
    assert record.phase is Phase.ENDED
    assert record.route is None
    assert stack.store.active_ids() == []


def test_caller_gone_before_the_hand_off_creates_nothing(stack: Stack) -> None:
    result = stack.sim.play(CallScript(hang_up_before_answer=True))
    assert stack.transfers() == []
    record = stack.record(result.call_sid)
    assert record.phase is Phase.ENDED
    assert record.outcome is Outcome.CALLER_HUNG_UP
    assert result.statuses == [204, 200]


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        ("no-answer", Outcome.NO_ANSWER),
        ("busy", Outcome.BUSY),
        ("failed", Outcome.FAILED),
        ("expired", Outcome.EXPIRED),
    ],
)
def test_unreached_number_gets_a_new_transfer_in_the_same_conversation(
    stack: Stack, answer: str, outcome: Outcome
) -> None:
    legs = (AgentLeg(answer=answer), AgentLeg(output=AGENT_OUTPUT))  # type: ignore[arg-type]
    result = stack.sim.play(CallScript(legs=legs, query={"conversation": "conv-77"}))
    assert result.final_target == f"number {AGENT}"
    assert len(result.dialed) == 2
    assert result.dialed[0] != result.dialed[1]
    transfers = stack.transfers()
    assert [t["id"] for t in transfers] == [f"{result.call_sid}-1", f"{result.call_sid}-2"]
    assert {t["externalConversationId"] for t in transfers} == {"conv-77"}
    record = stack.record(result.call_sid)
    assert [a.outcome for a in record.attempts] == [outcome, Outcome.AGENT_RETURNED]


def test_retries_are_bounded_then_the_fallback_agent(stack: Stack) -> None:
    legs = tuple(AgentLeg(answer="no-answer") for _ in range(5))
    result = stack.sim.play(CallScript(legs=legs))
    assert len(result.dialed) == 3
    assert len(set(result.dialed)) == 3
    assert result.said == ["Please hold while we connect you to an agent."]
    assert result.final_target == f"number {AGENT}"
    record = stack.record(result.call_sid)
    assert record.outcome is Outcome.FALLBACK
    assert [a.outcome for a in record.attempts] == [Outcome.NO_ANSWER] * 3


def test_inputs_reach_the_transfer(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(caller_fields=(("From", "callerNumber"),), task_name="default_task")
    script = CallScript(query={"task": "billing", "iv_accountNumber": "3434", "iv_name": "Doe, J"})
    stack.sim.play(script)
    [transfer] = stack.transfers()
    assert transfer["inputContext"] == {
        "taskName": "billing",
        "inputVariables": {
            "accountNumber": "3434",
            "name": "Doe, J",
            "callerNumber": "+15551230001",
        },
    }


def test_country_from_the_call_when_configured(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(country_from_call=True)
    stack.sim.play(CallScript(params={"ToCountry": "GB"}))
    assert stack.transfers()[0]["phoneNumber"]["country"] == "GB"


@pytest.mark.parametrize(
    ("spec", "outcome"),
    [
        ({"fail": {"status": 503, "count": 50}}, Outcome.FALLBACK),
        ({"fail": {"status": 429, "count": 50, "retryAfter": 30}}, Outcome.FALLBACK),
        ({"malformed": {"count": 50, "on": "create"}}, Outcome.FALLBACK),
        ({"latencyMs": 3000}, Outcome.FALLBACK),
        ({"fail": {"status": 429, "count": 1}}, Outcome.AGENT_RETURNED),
        ({"fail": {"status": 503, "count": 2}}, Outcome.AGENT_RETURNED),
    ],
)
def test_api_faults_at_create(stack: Stack, spec: dict, outcome: Outcome) -> None:
    stack.faults(**spec)
    result = stack.sim.play(CallScript(legs=(AgentLeg(output=AGENT_OUTPUT),)))
    assert result.statuses[0] == 200  # never an application error
    assert result.final_target == f"number {AGENT}"
    record = stack.record(result.call_sid)
    assert record.outcome is outcome
    if outcome is Outcome.FALLBACK:
        assert result.said == ["Please hold while we connect you to an agent."]
        assert record.attempts[0].outcome is Outcome.API_ERROR


@pytest.mark.parametrize(
    "spec",
    [
        # Persistent: a caller on hold is asked about again until the context wait is over.
        {"fail": {"status": 503, "count": 100_000, "on": "get"}},
        {"malformed": {"count": 100_000, "on": "get"}},
        {"completionLagMs": 5000},
    ],
)
def test_api_faults_when_fetching_the_context_fall_back(stack: Stack, spec: dict) -> None:
    stack.faults(**spec)
    result = stack.sim.play(CallScript(legs=(AgentLeg(output=SYSTEM_OUTPUT),)))
    assert result.final_target == f"number {AGENT}"
    # Held with sound while the context is asked for again, then the fallback.
    *held, last = result.said
    assert last == "Please hold while we connect you to an agent."
    assert set(held) <= {"One moment, please."}
    record = stack.record(result.call_sid)
    assert record.outcome is Outcome.FALLBACK
    assert record.attempts[0].outcome is Outcome.API_ERROR


def test_a_lagging_ongoing_status_is_polled_until_completed(stack: Stack) -> None:
    stack.faults(completionLagMs=400)
    result = stack.sim.play(CallScript(legs=(AgentLeg(output=SYSTEM_OUTPUT),)))
    assert result.final_verb == "Redirect"
    record = stack.record(result.call_sid)
    fetches = [e for e in record.timeline if e[1] == "context fetched"]
    assert fetches[0][2] == "status ONGOING"
    assert fetches[-1][2] == "status COMPLETED"


def test_hangup_on_star_and_time_limit_when_configured(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(hangup_on_star=True, agent_time_limit=600)
    result = stack.sim.play(CallScript())
    dial = result.documents[0].find("Dial")
    assert dial is not None
    assert dial.get("hangupOnStar") == "true"
    assert dial.get("timeLimit") == "600"


def test_dial_timeout_stays_inside_the_time_before_expiry(make_sandbox, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.twilio_stack import start_stack, stop_stack

    short = make_sandbox(expire_seconds=14)
    stack = start_stack(short, tmp_path)
    try:
        result = stack.sim.play(CallScript())
        dial = result.documents[0].find("Dial")
        assert dial is not None
        assert int(dial.get("timeout", "0")) <= 14 - FlowPolicy().expiry_margin
    finally:
        stop_stack(stack)
