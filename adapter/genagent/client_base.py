"""What the sync and async GenerativeAgent clients share: settings, URLs, the retry
decision, the metrics and log lines of each attempt."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any

import httpx

from adapter.config import GenAgentSettings
from adapter.genagent.errors import (
    ApiTimeoutError,
    ConflictError,
    GenAgentError,
    InvalidRequestError,
)
from adapter.genagent.models import CallTransfer
from adapter.genagent.protocol import COLLECTION_PATH, USER_AGENT, AsappAuth, check_created
from adapter.genagent.requests import TransferRequest
from adapter.genagent.retry import Deadline, RetryPolicy, as_deadline
from adapter.genagent.telemetry import attempt_finished, request_failed, status_of

log = logging.getLogger("adapter.genagent")

DeadlineArg = Deadline | float | None


class ClientBase:
    """What the sync and async clients share: settings, policy, and the retry decision."""

    def __init__(self, settings: GenAgentSettings, policy: RetryPolicy | None) -> None:
        self.settings = settings
        self.policy = policy or RetryPolicy()
        self._rng: Callable[[], float] = random.random
        # Built once: every request would otherwise parse and merge its URL again.
        self._base = settings.base_url.rstrip("/")
        self._collection_url = httpx.URL(self._base + COLLECTION_PATH)
        self._auth = AsappAuth(settings.api_id, settings.api_secret)
        # Nearly every attempt has the whole attempt timeout: one extension, built once.
        self._full_timeout = _timeouts(settings.attempt_timeout)

    def _http_options(self) -> dict[str, Any]:
        return {
            "auth": self._auth,
            # identity: the answers are a few hundred bytes, and a compressed one could
            # expand far past the body limit.
            "headers": {
                "user-agent": USER_AGENT,
                "accept": "application/json",
                "accept-encoding": "identity",
            },
            "timeout": self.settings.attempt_timeout,
            "limits": httpx.Limits(max_connections=100, max_keepalive_connections=50),
        }

    def _set_headers(self, client: httpx.Client | httpx.AsyncClient) -> None:
        """The headers of each request, from the client's: set once the client is built."""
        self._headers = list(client.headers.multi_items())
        self._json_headers = [*self._headers, ("content-type", "application/json")]

    def _request(self, method: str, path: str, body: bytes | None, timeout: float) -> httpx.Request:
        """What ``Client.request`` would send, minus what these requests never use
        (redirects, event hooks, cookies, a relative URL): the client's headers, the
        credentials from its auth, the JSON body as encoded once, the timeout."""
        request = httpx.Request(
            method,
            self._url(path),
            headers=self._headers if body is None else self._json_headers,
            content=body,
            extensions={"timeout": self._timeout_extension(timeout)},
        )
        next(self._auth.auth_flow(request))  # sets the asapp-api-* headers
        return request

    def _timeout_extension(self, timeout: float) -> dict[str, float]:
        return (
            self._full_timeout if timeout == self.settings.attempt_timeout else _timeouts(timeout)
        )

    def _url(self, path: str) -> httpx.URL:
        """The absolute URL of ``path`` under GA_API_BASE_URL (which may hold a prefix)."""
        return self._collection_url if path == COLLECTION_PATH else httpx.URL(self._base + path)

    def _deadline(self, value: DeadlineArg) -> Deadline:
        return as_deadline(value, self.settings.deadline)

    def _attempt_timeout(self, deadline: Deadline) -> float:
        remaining = deadline.remaining()
        if remaining < self.policy.min_attempt_seconds:
            raise ApiTimeoutError("deadline reached before the request could be sent")
        return min(self.settings.attempt_timeout, remaining)

    def _after_failure(
        self, method: str, path: str, error: GenAgentError, retry: int, deadline: Deadline
    ) -> float:
        """Seconds to wait before retrying, or raise ``error`` when it must not be retried."""
        wait = self.policy.next_wait(error, retry, deadline, self._rng)
        if wait is None:
            request_failed(method, path, error)
            raise error
        log.warning(
            "GenerativeAgent %s %s failed (%s); retry %d in %.2f s",
            method,
            path_label(path),
            type(error).__name__,
            retry,
            wait,
        )
        return wait

    @staticmethod
    def _answered(method: str, path: str, response: httpx.Response, started: float) -> None:
        seconds = time.monotonic() - started
        attempt_finished(method, path, str(response.status_code), seconds)
        log.debug(
            "GenerativeAgent %s %s -> %d in %.1f ms",
            method,
            path_label(path),
            response.status_code,
            seconds * 1000,
        )

    @staticmethod
    def _unanswered(method: str, path: str, error: GenAgentError, started: float) -> None:
        attempt_finished(method, path, status_of(error), time.monotonic() - started)

    @staticmethod
    def _request_body(request: TransferRequest) -> bytes:
        if not hasattr(request, "encoded"):
            raise InvalidRequestError("create_transfer takes a PhoneNumber or Sip transfer request")
        return request.encoded()

    @staticmethod
    def _check_same_conversation(request: TransferRequest, saved: CallTransfer) -> CallTransfer:
        if saved.external_conversation_id != request.external_conversation_id:
            raise ConflictError(
                409,
                "the transfer id is already used by another conversation",
                code="409-conversation",
            )
        return check_created(request, saved)


def _timeouts(seconds: float) -> dict[str, float]:
    """httpx's timeout extension: every phase bounded by ``seconds``."""
    return {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}


def check_transfer_id(transfer_id: Any) -> None:
    """InvalidRequestError unless ``transfer_id`` is a non-empty string."""
    if not isinstance(transfer_id, str) or not transfer_id.strip():
        raise InvalidRequestError("the call transfer id must be a non-empty string")


def path_label(path: str) -> str:
    """The endpoint of ``path`` for a log line: never a transfer id."""
    return "call-transfers" if path == COLLECTION_PATH else "call-transfers/{id}"
