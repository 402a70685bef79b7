"""Any instance serves any webhook of any call: two gunicorn instances of the Procfile's
web line on one Redis, a call's webhooks alternating between them, duplicates delivered
to both at once, and one instance killed mid-call."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from twilio.request_validator import RequestValidator

from adapter.demo.simulator import AgentLeg, CallScript, TwilioSimulator
from adapter.flow import CallRecord, Outcome
from adapter.sandbox import SandboxServer
from adapter.store import StoreOptions, open_store
from tests.twilio_stack import AUTH_TOKEN, RETURN_URL, call_params
from tests.web_instances import PUBLIC_URL, RoundRobin, WebInstance

SYSTEM_OUTPUT = {"transferType": "SYSTEM", "transferVariables": {"balance": "12"}}


@pytest.fixture
def instances(
    sandbox: SandboxServer, redis_url: str, redis_options: StoreOptions, tmp_path: Path
) -> Iterator[list[WebInstance]]:
    started = [
        WebInstance(sandbox, redis_url, redis_options.key_prefix, tmp_path) for _ in range(2)
    ]
    try:
        for instance in started:
            instance.start()
        yield started
    finally:
        for instance in started:
            instance.kill()


def record(redis_url: str, options: StoreOptions, call_sid: str) -> CallRecord:
    with open_store(redis_url, options) as store:
        stored = store.get(call_sid)
    assert stored is not None
    return CallRecord.from_json(stored.data)


def transfers(sandbox: SandboxServer) -> list[dict[str, Any]]:
    answer = httpx.get(f"{sandbox.url}/sandbox/transfers", timeout=10)
    transfers: list[dict[str, Any]] = answer.json()["transfers"]
    return transfers


def signed_post(http: httpx.Client, base: str, path: str, params: dict[str, str]) -> httpx.Response:
    """A webhook as Twilio sends it (signed for the public URL), to one instance."""
    signature = RequestValidator(AUTH_TOKEN).compute_signature(f"{PUBLIC_URL}{path}", params)
    return http.post(f"{base}{path}", data=params, headers={"X-Twilio-Signature": signature})


def both(http: httpx.Client, base: str, path: str, params: dict[str, str]) -> Any:
    """The delivery of one webhook to one instance, to run with ``at_once``."""
    return lambda: signed_post(http, base, path, params)


def at_once(calls: list[Any]) -> list[Any]:
    """Run the callables on threads released together; their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(n: int) -> None:
        barrier.wait(timeout=10)
        results[n] = calls[n]()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_a_call_alternating_between_instances_completes(
    instances: list[WebInstance],
    sandbox: SandboxServer,
    redis_url: str,
    redis_options: StoreOptions,
):
    router = RoundRobin(instances)
    with httpx.Client(transport=router, timeout=30) as http:
        sim = TwilioSimulator(PUBLIC_URL, sandbox.url, AUTH_TOKEN, http=http)
        legs = (AgentLeg(answer="no-answer"), AgentLeg(output=SYSTEM_OUTPUT))
        result = sim.play(CallScript(legs=legs))

    assert result.statuses == [200, 200, 200, 204]  # voice, two dial results, status
    assert result.final_verb == "Redirect"
    assert result.final_target.startswith(RETURN_URL)
    assert len(result.dialed) == 2
    # voice, dial-result, dial-result, status: two on each instance.
    assert sorted(router.served.values()) == [2, 2]
    ids = sorted(transfer["id"] for transfer in transfers(sandbox))
    assert ids == [f"{result.call_sid}-1", f"{result.call_sid}-2"]
    saved = record(redis_url, redis_options, result.call_sid)
    assert [attempt.outcome for attempt in saved.attempts] == [
        Outcome.NO_ANSWER,
        Outcome.AGENT_RETURNED,
    ]


def test_duplicate_webhooks_on_both_instances_create_one_transfer_per_attempt(
    instances: list[WebInstance], sandbox: SandboxServer
):
    bases = [instance.url for instance in instances]
    with httpx.Client(timeout=30) as http:
        for n in range(4):
            call_sid = f"CA-duplicate-{n}"
            params = call_params(call_sid)
            answers = at_once([both(http, base, "/twilio/voice", params) for base in bases])
            assert [answer.status_code for answer in answers] == [200, 200]
            assert answers[0].content == answers[1].content
            dial = ET.fromstring(answers[0].content).find("Dial")
            assert dial is not None
            action = dial.get("action", "")
            assert action.endswith("attempt=1")

            # The number did not answer: both instances hear of it at once.
            result = call_params(call_sid, CallStatus="in-progress", DialCallStatus="no-answer")
            path = action.removeprefix(PUBLIC_URL)
            retries = at_once([both(http, base, path, result) for base in bases])
            assert [answer.status_code for answer in retries] == [200, 200]
            assert retries[0].content == retries[1].content

    ids = sorted(transfer["id"] for transfer in transfers(sandbox))
    assert ids == sorted(f"CA-duplicate-{n}-{attempt}" for n in range(4) for attempt in (1, 2))


def test_the_other_instance_finishes_a_call_when_one_is_killed(
    instances: list[WebInstance], sandbox: SandboxServer
):
    doomed, survivor = instances
    call_sid = "CA-survivor"
    with httpx.Client(timeout=30) as http:
        answer = signed_post(http, doomed.url, "/twilio/voice", call_params(call_sid))
        dial = ET.fromstring(answer.content).find("Dial")
        assert dial is not None
        number = dial.findtext("Number")
        connected = http.post(f"{sandbox.url}/sandbox/calls", json={"transferNumber": number})
        transfer_id = connected.json()["id"]
        http.post(
            f"{sandbox.url}/sandbox/transfers/{transfer_id}/complete", json=SYSTEM_OUTPUT
        ).raise_for_status()

        doomed.kill()
        finished = call_params(
            call_sid, CallStatus="in-progress", DialCallStatus="completed", DialCallDuration="30"
        )
        path = dial.get("action", "").removeprefix(PUBLIC_URL)
        last = signed_post(http, survivor.url, path, finished)

    assert last.status_code == 200
    redirect = ET.fromstring(last.content).find("Redirect")
    assert redirect is not None
    assert (redirect.text or "").startswith(RETURN_URL)
    assert "balance=12" in (redirect.text or "")
