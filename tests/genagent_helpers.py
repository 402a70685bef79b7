"""Helpers for the GenerativeAgent client tests (deliberately not in conftest.py).

* ``make_settings``: GenAgentSettings pointing at a fake base URL with a known secret.
* ``ScriptedHandler``: an ``httpx.MockTransport`` handler answering from a script and
  recording every request it was sent.
* ``SyncDriver`` / ``AsyncDriver``: the same small interface over GenAgentClient and
  AsyncGenAgentClient, so one test body exercises both (async calls via asyncio.run).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx

from adapter.config import GenAgentSettings, Secret
from adapter.genagent import AsyncGenAgentClient, GenAgentClient, RetryPolicy

API_ID = "id-123"
SECRET_VALUE = "s3cr3t-value"
BASE_URL = "https://ga.test"
COLLECTION_PATH = "/generativeagent/v1/call-transfers"
DOC_REQUEST_ID = "8e033668-9f1a-11ec-b909-0242ac120002"

# Tiny schedules so that retrying tests take milliseconds.
FAST_POLICY = RetryPolicy(rate_limited=(0.01, 0.02, 0.04), server_error=(0.01, 0.02, 0.04))
# No retries at all: every error is raised after one request.
NO_RETRY_POLICY = RetryPolicy(rate_limited=(), server_error=())

Step = Callable[[httpx.Request], httpx.Response]


def make_settings(**overrides: Any) -> GenAgentSettings:
    values: dict[str, Any] = {
        "base_url": BASE_URL,
        "api_id": API_ID,
        "api_secret": Secret(SECRET_VALUE),
        "deadline": 3.0,
        "attempt_timeout": 1.0,
        "max_requests_per_second": 1000,
    }
    values.update(overrides)
    return GenAgentSettings(**values)


def reply(
    status: int,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
) -> Step:
    """A step answering ``status`` with a JSON ``body`` (or raw ``content``)."""

    def build(request: httpx.Request) -> httpx.Response:
        if content is not None:
            return httpx.Response(status, content=content, headers=headers)
        if body is None:
            return httpx.Response(status, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return build


def fail(exc_type: type[httpx.TransportError], message: str = "boom") -> Step:
    """A step raising a fresh ``exc_type`` (e.g. httpx.ConnectError) for the request."""

    def build(request: httpx.Request) -> httpx.Response:
        raise exc_type(message, request=request)

    return build


def error_body(code: str, message: str, request_id: str = DOC_REQUEST_ID) -> dict[str, Any]:
    """The documented error body."""
    return {"error": {"requestId": request_id, "code": code, "message": message}}


def transfer_body(
    transfer_id: str = "t-1",
    conversation_id: str = "c-1",
    status: str = "ACTIVE",
    **extra: Any,
) -> dict[str, Any]:
    """A PHONE_NUMBER call transfer as the create example in the PSTN guide returns it."""
    body: dict[str, Any] = {
        "id": transfer_id,
        "externalConversationId": conversation_id,
        "status": status,
        "type": "PHONE_NUMBER",
        "inputContext": {
            "taskName": "AsappDemo",
            "inputVariables": {"accountNumber": "3434", "name": "sample_name"},
        },
        "phoneNumber": {
            "transferNumber": "+19991234",
            "country": "US",
            "expireAt": "2025-06-19T13:39:40Z",
        },
    }
    body.update(extra)
    return body


class ScriptedHandler:
    """Answers the n-th request with the n-th step; the last step repeats afterwards."""

    def __init__(self, *steps: Step) -> None:
        if not steps:
            raise ValueError("a script needs at least one step")
        self.steps = steps
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps[min(len(self.requests), len(self.steps)) - 1]
        return step(request)

    @property
    def count(self) -> int:
        return len(self.requests)

    def bodies(self) -> list[Any]:
        return [json.loads(r.content) if r.content else None for r in self.requests]


class SyncDriver:
    mode = "sync"

    def __init__(self, settings: GenAgentSettings, handler: Any, policy: RetryPolicy) -> None:
        self.client = GenAgentClient(
            settings, transport=httpx.MockTransport(handler), policy=policy
        )

    def create(self, request: Any, **kwargs: Any) -> Any:
        return self.client.create_transfer(request, **kwargs)

    def get(self, transfer_id: Any, **kwargs: Any) -> Any:
        return self.client.get_transfer(transfer_id, **kwargs)

    def close(self) -> None:
        self.client.close()


class AsyncDriver:
    mode = "async"

    def __init__(self, settings: GenAgentSettings, handler: Any, policy: RetryPolicy) -> None:
        self.client = AsyncGenAgentClient(
            settings, transport=httpx.MockTransport(handler), policy=policy
        )

    def create(self, request: Any, **kwargs: Any) -> Any:
        return asyncio.run(self.client.create_transfer(request, **kwargs))

    def get(self, transfer_id: Any, **kwargs: Any) -> Any:
        return asyncio.run(self.client.get_transfer(transfer_id, **kwargs))

    def close(self) -> None:
        asyncio.run(self.client.aclose())


DRIVERS: dict[str, type[SyncDriver] | type[AsyncDriver]] = {
    "sync": SyncDriver,
    "async": AsyncDriver,
}
