"""Shared fixtures: a real sandbox server on 127.0.0.1 and clients pointed at it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import redis

from adapter.config import GenAgentSettings, Secret
from adapter.genagent import GenAgentClient, RetryPolicy
from adapter.sandbox import SandboxConfig, SandboxServer
from adapter.store import StoreOptions
from tests.redis_server import RedisServer

if TYPE_CHECKING:
    from tests.twilio_stack import Stack

API_ID = "sandbox-id"
API_SECRET = "sandbox-secret-value"
AUTH = {"asapp-api-id": API_ID, "asapp-api-secret": API_SECRET}
FAST_RETRIES = RetryPolicy(rate_limited=(0.02, 0.04, 0.08), server_error=(0.01, 0.02, 0.04))


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., SandboxServer]]:
    """Start sandboxes with a chosen SandboxConfig; all are stopped after the test."""
    servers: list[SandboxServer] = []

    def start(**config: Any) -> SandboxServer:
        config.setdefault("api_id", API_ID)
        config.setdefault("api_secret", API_SECRET)
        server = SandboxServer(SandboxConfig(**config)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def sandbox(make_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    """A sandbox with default settings (60 s expiry, 100 numbers)."""
    return make_sandbox()


@pytest.fixture
def raw(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    """Plain HTTP to the sandbox, for checking its API and driving its control endpoints."""
    with httpx.Client(base_url=sandbox.url, timeout=5) as client:
        yield client


def settings_for(url: str, **overrides: Any) -> GenAgentSettings:
    """Client settings pointing at ``url`` with the sandbox's credentials."""
    values: dict[str, Any] = {
        "base_url": url,
        "api_id": API_ID,
        "api_secret": Secret(API_SECRET),
        "deadline": 5.0,
        "attempt_timeout": 2.0,
        "max_requests_per_second": 100,
    }
    values.update(overrides)
    return GenAgentSettings(**values)


@pytest.fixture
def client(sandbox: SandboxServer) -> Iterator[GenAgentClient]:
    """The real synchronous client, over loopback, against the sandbox."""
    with GenAgentClient(settings_for(sandbox.url), policy=FAST_RETRIES) as ga:
        yield ga


@pytest.fixture
def stack(sandbox: SandboxServer, tmp_path: Path) -> Iterator[Stack]:
    """The Twilio front on a real socket: agent +15550100, SYSTEM back to an IVR URL."""
    from tests.twilio_stack import start_stack, stop_stack

    running = start_stack(sandbox, tmp_path)
    yield running
    stop_stack(running)


@pytest.fixture
def make_stack(sandbox: SandboxServer, tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """Build Twilio fronts with other settings (keyword arguments of TwilioSettings)."""
    from tests.twilio_stack import start_stack, stop_stack

    stacks: list[Stack] = []

    def make(**twilio: Any) -> Stack:
        running = start_stack(sandbox, tmp_path, f"calls-{len(stacks)}.sqlite3", **twilio)
        stacks.append(running)
        return running

    yield make
    for running in stacks:
        stop_stack(running)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis for the whole session: GENAGENT_TEST_REDIS_URL, or a private redis-server."""
    shared = os.environ.get("GENAGENT_TEST_REDIS_URL")
    if shared:
        yield shared
        return
    server = RedisServer().start()
    yield server.url
    server.stop()


@pytest.fixture
def redis_options(redis_url: str) -> Iterator[StoreOptions]:
    """Store options with a key prefix of this test's own, so no test sees another's keys;
    the keys under it are deleted afterwards."""
    options = StoreOptions(key_prefix=f"test-{uuid.uuid4().hex[:12]}:")
    yield options
    with redis.Redis.from_url(redis_url) as raw:
        for key in raw.scan_iter(f"{options.key_prefix}*"):
            raw.delete(key)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of this test's own, which the test may stop, pause and restart."""
    server = RedisServer().start()
    yield server
    server.stop()
