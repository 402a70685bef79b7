"""On Redis, an event that reads the call and then calls the API reserves the request's
rate-limit slot in the same round trip: the commands Redis receives, the slot the
client honours, and the window it leaves behind."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from adapter.genagent import ApiTimeoutError, GenAgentClient, StartSlot
from adapter.genagent.ratelimit import SLOT_LATENESS, AsyncRateLimiter, RateLimiter
from adapter.genagent.retry import Deadline
from adapter.sandbox import SandboxServer
from adapter.store import StoreOptions, StoreUnavailableError, open_store
from adapter.store.shared_limit import SAFETY_MARGIN, RedisRateWindow, shared_limit_for
from adapter.twilio.sids import new_call_sid
from tests.conftest import settings_for
from tests.redis_server import RedisServer, free_port
from tests.twilio_stack import Stack, call_params, start_stack, stop_stack, twiml

PREFIX = "reserve-test:"
WINDOW_KEY = f"{PREFIX}ga-api-starts"


@pytest.fixture
def stack(sandbox: SandboxServer, redis_server: RedisServer, tmp_path: Path) -> Iterator[Stack]:
    """The web app on a Redis of this test's own, its commands counted from a clean slate."""
    running = start_stack(
        sandbox,
        tmp_path,
        store_url=redis_server.url,
        store_options=StoreOptions(key_prefix=PREFIX),
    )
    # A first call loads every script: what follows runs as in a warm deployment.
    warm_up = new_call_sid()
    twiml(running.post("/twilio/voice", call_params(warm_up)))
    failed = call_params(warm_up, CallStatus="in-progress", DialCallStatus="no-answer")
    twiml(running.post("/twilio/dial-result?attempt=1", failed))
    yield running
    stop_stack(running)


class Sent:
    """The commands clients send to a Redis (MONITOR), not those its scripts run."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.names: list[str] = []
        self._marker = f"marker-{uuid.uuid4().hex}"
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> Sent:
        self._thread.start()
        self._markers = self.server.client()  # one connection: its handshake comes first
        while not self._started.wait(0.05):
            self._markers.echo(f"{self._marker}-start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._markers.echo(f"{self._marker}-stop")
        self._markers.close()
        self._thread.join(timeout=10)

    def _watch(self) -> None:
        with self.server.client() as raw, raw.monitor() as monitor:
            while True:
                seen = monitor.next_command()
                command = str(seen["command"])
                if self._marker in command:
                    if command.endswith("-stop"):
                        return
                    self._started.set()
                elif self._started.is_set() and seen["client_type"] != "lua":
                    self.names.append(command.split()[0].lower())


def window_size(server: RedisServer) -> int:
    with server.client() as raw:
        return int(raw.zcard(WINDOW_KEY))


def test_a_new_call_costs_two_round_trips(stack: Stack, redis_server: RedisServer) -> None:
    before = window_size(redis_server)
    call_sid = new_call_sid()

    with Sent(redis_server) as sent:
        document = twiml(stack.post("/twilio/voice", call_params(call_sid)))

    assert document.find("Dial/Number") is not None
    # One script reads the call and reserves the create's slot, one writes the record.
    assert sent.names == ["evalsha", "evalsha"]
    assert window_size(redis_server) == before + 1
    assert stack.record(call_sid).attempts[0].transfer_id == f"{call_sid}-1"


def test_a_failed_dial_reads_and_reserves_once_then_reserves_the_new_create(
    stack: Stack, redis_server: RedisServer
) -> None:
    call_sid = new_call_sid()
    twiml(stack.post("/twilio/voice", call_params(call_sid)))
    before = window_size(redis_server)

    action = call_params(call_sid, CallStatus="in-progress", DialCallStatus="no-answer")
    with Sent(redis_server) as sent:
        document = twiml(stack.post("/twilio/dial-result?attempt=1", action))

    assert document.find("Dial/Number") is not None  # a second transfer is dialed
    # Read + the GET's slot, the second create's slot, the write.
    assert sent.names == ["evalsha", "evalsha", "evalsha"]
    assert window_size(redis_server) == before + 2  # the GET and the create, one slot each
    first, second = stack.record(call_sid).attempts
    assert first.outcome is not None
    assert second.outcome is None


def test_a_caller_hang_up_reserves_nothing(stack: Stack, redis_server: RedisServer) -> None:
    call_sid = new_call_sid()
    twiml(stack.post("/twilio/voice", call_params(call_sid)))
    before = window_size(redis_server)

    action = call_params(call_sid, CallStatus="completed", DialCallStatus="completed")
    with Sent(redis_server) as sent:
        twiml(stack.post("/twilio/dial-result?attempt=1", action))

    assert sent.names == ["hmget", "evalsha"]  # a plain read, the write
    assert window_size(redis_server) == before
    assert stack.record(call_sid).phase.value == "ended"


def test_a_redelivered_webhook_spends_a_slot_and_makes_no_request(
    stack: Stack, redis_server: RedisServer
) -> None:
    params = call_params(new_call_sid())
    first = stack.post("/twilio/voice", params)
    before, transfers = window_size(redis_server), len(stack.transfers())

    again = stack.post("/twilio/voice", params)

    assert again.content == first.content
    assert len(stack.transfers()) == transfers
    assert window_size(redis_server) == before + 1  # stricter, never looser


# --- the window's read-and-reserve ---------------------------------------------------------


def test_get_reserving_reads_the_record_as_get_does_and_reserves(
    redis_url: str, redis_options: StoreOptions
) -> None:
    with open_store(redis_url, redis_options) as store:
        window = shared_limit_for(store, 2)
        assert isinstance(window, RedisRateWindow)
        store.create("CA-known", {"callId": "CA-known", "note": "é\u2028\x00"}, active=True)

        missing, first = window.get_reserving("CA-missing", 5.0)
        known, second = window.get_reserving("CA-known", 5.0)
        _, refused = window.get_reserving("CA-known", 0.1)  # the next slot is ~1.1 s away
        later_at = time.monotonic()
        _, later = window.get_reserving("CA-known", 5.0)

        assert missing is None
        assert known == store.get("CA-known")
        now = time.monotonic()
        assert first.start is not None
        assert first.start <= now
        assert second.start is not None
        assert second.start <= now
        assert refused.start is None
        assert later.start is not None
        assert later_at + 0.5 < later.start <= later_at + 1.0 + SAFETY_MARGIN
        with redis.Redis.from_url(redis_url) as raw:
            assert raw.zcard(window.key) == 2  # the window keeps the last N starts


def test_get_reserving_without_redis_is_a_store_error() -> None:
    absent = RedisServer(free_port())  # nothing listens on its port
    with open_store(absent.url, StoreOptions(key_prefix="absent:")) as store:
        window = shared_limit_for(store, 5)
        assert window is not None
        with pytest.raises(StoreUnavailableError):
            window.get_reserving("CA-any", 5.0)


def test_get_reserving_checks_the_call_id(redis_url: str, redis_options: StoreOptions) -> None:
    with open_store(redis_url, redis_options) as store:
        window = shared_limit_for(store, 5)
        assert window is not None
        with pytest.raises(ValueError, match="call_id must be a non-empty string"):
            window.get_reserving("", 5.0)


# --- the limiter honours a slot reserved ahead ------------------------------------------------


def test_a_refused_slot_fails_at_once_without_a_request(sandbox: SandboxServer) -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(404, json={"error": {"message": "no"}})

    with GenAgentClient(settings_for(sandbox.url), transport=httpx.MockTransport(answer)) as client:
        with pytest.raises(ApiTimeoutError):
            client.get_transfer("CA1-1", deadline=5.0, slot=StartSlot(None))
    assert sent == []


def test_the_limiter_waits_for_a_slot_ahead_and_leaves_its_window_alone() -> None:
    limiter = RateLimiter(1)
    limiter.acquire(Deadline.after(5))  # the local window is now full for a second
    began = time.monotonic()

    limiter.acquire(Deadline.after(5), StartSlot.after(0.2))  # the slot decides, not the window

    assert 0.2 <= time.monotonic() - began < 0.9


def test_a_slot_past_the_deadline_is_refused() -> None:
    with pytest.raises(ApiTimeoutError):
        RateLimiter(10).acquire(Deadline.after(0.1), StartSlot.after(0.5))


def test_a_stale_slot_is_replaced_by_a_fresh_reservation() -> None:
    limiter = RateLimiter(1)
    limiter.acquire(Deadline.after(5))
    stale = StartSlot(time.monotonic() - SLOT_LATENESS - 0.5)
    with pytest.raises(ApiTimeoutError):  # the window, full for a second, now decides
        limiter.acquire(Deadline.after(0.2), stale)


def test_the_async_limiter_honours_slots_the_same_way() -> None:
    async def main() -> float:
        limiter = AsyncRateLimiter(1)
        await limiter.acquire(Deadline.after(5))
        with pytest.raises(ApiTimeoutError):
            await limiter.acquire(Deadline.after(5), StartSlot(None))
        with pytest.raises(ApiTimeoutError):
            await limiter.acquire(Deadline.after(0.2), StartSlot(time.monotonic() - 1))
        began = time.monotonic()
        await limiter.acquire(Deadline.after(5), StartSlot.after(0.2))
        return time.monotonic() - began

    assert 0.2 <= asyncio.run(main()) < 0.9
