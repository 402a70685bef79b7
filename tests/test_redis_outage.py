"""Redis stopped and restarted mid-call: the caller gets the fallback at once, never an
error, and the app serves new calls again as soon as Redis is back, without a restart."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from adapter.sandbox import SandboxServer
from adapter.store import StoreOptions
from tests.redis_server import RedisServer
from tests.twilio_stack import AGENT, Stack, call_params, start_stack, stop_stack

# Twilio gives up on a webhook after 15 s and plays its "application error": the answer
# must come well before that.
TWILIO_WEBHOOK_TIMEOUT = 15.0


@pytest.fixture
def redis_stack(
    sandbox: SandboxServer, redis_server: RedisServer, tmp_path: Path
) -> Iterator[Stack]:
    """The Twilio front in process on a Redis store of this test's own."""
    options = StoreOptions(key_prefix="outage:")
    stack = start_stack(sandbox, tmp_path, store_url=redis_server.url, store_options=options)
    stack.http.timeout = httpx.Timeout(TWILIO_WEBHOOK_TIMEOUT)
    yield stack
    stop_stack(stack)


def dialed_number(document: ET.Element) -> str:
    dial = document.find("Dial")
    assert dial is not None, ET.tostring(document)
    return (dial.findtext("Number") or "").strip()


def test_redis_down_mid_call_sends_the_caller_to_the_fallback_then_recovers(
    redis_stack: Stack, redis_server: RedisServer
):
    stack = redis_stack
    handoff = stack.post("/twilio/voice", call_params("CA-outage"))
    document = ET.fromstring(handoff.content)
    number = dialed_number(document)
    assert number.startswith("+1999555")  # GenerativeAgent's transfer number
    action = document.find("Dial").get("action", "")  # type: ignore[union-attr]

    redis_server.stop()
    result = stack.post(
        action.removeprefix(stack.web.url),
        call_params("CA-outage", CallStatus="in-progress", DialCallStatus="no-answer"),
    )
    assert result.status_code == 200
    assert dialed_number(ET.fromstring(result.content)) == AGENT  # the fallback agent

    redis_server.start()  # empty: no persistence, as after a managed Redis failover
    fresh = stack.post("/twilio/voice", call_params("CA-after"))
    assert fresh.status_code == 200
    assert dialed_number(ET.fromstring(fresh.content)).startswith("+1999555")
    assert stack.store.get("CA-after") is not None


def test_a_new_call_while_redis_is_down_goes_to_the_fallback(
    redis_stack: Stack, redis_server: RedisServer
):
    redis_server.stop()
    answer = redis_stack.post("/twilio/voice", call_params("CA-no-store"))
    assert answer.status_code == 200
    assert dialed_number(ET.fromstring(answer.content)) == AGENT


def test_a_hung_redis_mid_call_still_answers_the_fallback_in_time(
    redis_stack: Stack, redis_server: RedisServer
):
    handoff = redis_stack.post("/twilio/voice", call_params("CA-hung"))
    action = ET.fromstring(handoff.content).find("Dial").get("action", "")  # type: ignore[union-attr]

    redis_server.pause()  # connections stay open, nothing is answered
    try:
        result = redis_stack.post(
            action.removeprefix(redis_stack.web.url),
            call_params("CA-hung", CallStatus="in-progress", DialCallStatus="busy"),
        )
    finally:
        redis_server.resume()
    assert result.status_code == 200
    assert dialed_number(ET.fromstring(result.content)) == AGENT
