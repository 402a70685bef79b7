"""GenerativeAgent call-transfers clients: one pooled httpx client per process.

``GenAgentClient`` serves threaded code (the Flask app under gunicorn);
``AsyncGenAgentClient`` serves the asyncio AMI worker, over aiohttp's connection pool
(``httpx_aiohttp``: the httpx API at about half httpcore's CPU per request). Both run
every call under a deadline, retry only what ASAPP says is safe to retry, keep bursts
under the spike limit, and make a create idempotent: a 409 for an id already saved
returns that transfer instead of failing.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import aiohttp
import httpx
from httpx_aiohttp import HttpxAiohttpClient

from adapter.config import GenAgentSettings
from adapter.genagent.errors import (
    ApiConnectionError,
    ApiTimeoutError,
    ConflictError,
    GenAgentError,
    InvalidRequestError,
    TransportError,
)
from adapter.genagent.models import CallTransfer
from adapter.genagent.protocol import (
    COLLECTION_PATH,
    USER_AGENT,
    AsappAuth,
    check_created,
    interpret,
    transfer_path,
    transport_error,
)
from adapter.genagent.ratelimit import AsyncRateLimiter, RateLimiter, SharedWindow
from adapter.genagent.requests import TransferRequest
from adapter.genagent.retry import Deadline, RetryPolicy, as_deadline
from adapter.genagent.telemetry import attempt_finished, request_failed, status_of

if TYPE_CHECKING:
    from httpx._client import UseClientDefault

log = logging.getLogger("adapter.genagent")

DeadlineArg = Deadline | float | None


class _ClientBase:
    """What the sync and async clients share: settings, policy, and the retry decision."""

    def __init__(self, settings: GenAgentSettings, policy: RetryPolicy | None) -> None:
        self.settings = settings
        self.policy = policy or RetryPolicy()
        self._rng: Callable[[], float] = random.random
        # Built once: every request would otherwise parse and merge its URL again.
        self._base = settings.base_url.rstrip("/")
        self._collection_url = httpx.URL(self._base + COLLECTION_PATH)

    def _http_options(self) -> dict[str, Any]:
        return {
            "auth": AsappAuth(self.settings.api_id, self.settings.api_secret),
            "headers": {"user-agent": USER_AGENT, "accept": "application/json"},
            "timeout": self.settings.attempt_timeout,
            "limits": httpx.Limits(max_connections=100, max_keepalive_connections=50),
        }

    def _url(self, path: str) -> httpx.URL:
        """The absolute URL of ``path`` under GA_API_BASE_URL (which may hold a prefix)."""
        return self._collection_url if path == COLLECTION_PATH else httpx.URL(self._base + path)

    def _timeout_arg(self, timeout: float) -> float | UseClientDefault:
        """The client's own timeout object unless the deadline leaves less time."""
        return httpx.USE_CLIENT_DEFAULT if timeout >= self.settings.attempt_timeout else timeout

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
            _path_label(path),
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
            _path_label(path),
            response.status_code,
            seconds * 1000,
        )

    @staticmethod
    def _unanswered(method: str, path: str, error: GenAgentError, started: float) -> None:
        attempt_finished(method, path, status_of(error), time.monotonic() - started)

    @staticmethod
    def _request_body(request: TransferRequest) -> dict[str, Any]:
        if not hasattr(request, "to_json"):
            raise InvalidRequestError("create_transfer takes a PhoneNumber or Sip transfer request")
        return request.to_json()

    @staticmethod
    def _check_same_conversation(request: TransferRequest, saved: CallTransfer) -> CallTransfer:
        if saved.external_conversation_id != request.external_conversation_id:
            raise ConflictError(
                409,
                "the transfer id is already used by another conversation",
                code="409-conversation",
            )
        return check_created(request, saved)


class GenAgentClient(_ClientBase):
    """Synchronous, thread-safe client; create one per process and share it."""

    def __init__(
        self,
        settings: GenAgentSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        policy: RetryPolicy | None = None,
        shared_limit: SharedWindow | None = None,
    ) -> None:
        super().__init__(settings, policy)
        self._limiter = RateLimiter(settings.max_requests_per_second, shared=shared_limit)
        self._http = httpx.Client(transport=transport, **self._http_options())

    def create_transfer(
        self, request: TransferRequest, *, deadline: DeadlineArg = None
    ) -> CallTransfer:
        """POST a new call transfer; a 409 for the same id returns the saved transfer."""
        body = self._request_body(request)
        limit = self._deadline(deadline)
        try:
            created = self._call("POST", COLLECTION_PATH, body, limit)
        except ConflictError:
            saved = self._call("GET", transfer_path(request.id), None, limit)
            return self._check_same_conversation(request, saved)
        return check_created(request, created)

    def get_transfer(self, transfer_id: str, *, deadline: DeadlineArg = None) -> CallTransfer:
        """GET one call transfer by id."""
        _check_transfer_id(transfer_id)
        return self._call("GET", transfer_path(transfer_id), None, self._deadline(deadline))

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None, deadline: Deadline
    ) -> CallTransfer:
        retry = 0
        while True:
            self._limiter.acquire(deadline)
            timeout = self._attempt_timeout(deadline)
            started = time.monotonic()
            try:
                response = self._http.request(
                    method, self._url(path), json=body, timeout=self._timeout_arg(timeout)
                )
                self._answered(method, path, response, started)
                return interpret(response)
            except httpx.HTTPError as exc:
                error: GenAgentError = transport_error(exc, timeout)
                self._unanswered(method, path, error, started)
            except GenAgentError as exc:
                error = exc
            retry += 1
            time.sleep(self._after_failure(method, path, error, retry, deadline))

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GenAgentClient(base_url={self.settings.base_url!r})"


class AsyncGenAgentClient(_ClientBase):
    """asyncio client; create one per event loop and share it among all calls.

    Without ``transport`` its requests go over aiohttp (``httpx_aiohttp``), with what httpx
    itself would use: the same TLS verification (``httpx.create_ssl_context``: certifi's CAs,
    or SSL_CERT_FILE / SSL_CERT_DIR), the same proxies from the environment, the same pool
    size; ``aclose()`` closes the aiohttp session. Whatever aiohttp raises ends as the
    client's ApiConnectionError or ApiTimeoutError.
    """

    def __init__(
        self,
        settings: GenAgentSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        policy: RetryPolicy | None = None,
        shared_limit: SharedWindow | None = None,
    ) -> None:
        super().__init__(settings, policy)
        self._limiter = AsyncRateLimiter(settings.max_requests_per_second, shared=shared_limit)
        # An injected transport (tests) is used as it is; otherwise AiohttpTransports, for
        # the direct route and for each proxy the environment names, as httpx would.
        self._http: httpx.AsyncClient = HttpxAiohttpClient(
            transport=transport, **self._http_options()
        )
        self._auth = AsappAuth(settings.api_id, settings.api_secret)

    async def create_transfer(
        self, request: TransferRequest, *, deadline: DeadlineArg = None
    ) -> CallTransfer:
        """POST a new call transfer; a 409 for the same id returns the saved transfer."""
        body = self._request_body(request)
        limit = self._deadline(deadline)
        try:
            created = await self._call("POST", COLLECTION_PATH, body, limit)
        except ConflictError:
            saved = await self._call("GET", transfer_path(request.id), None, limit)
            return self._check_same_conversation(request, saved)
        return check_created(request, created)

    async def get_transfer(self, transfer_id: str, *, deadline: DeadlineArg = None) -> CallTransfer:
        """GET one call transfer by id."""
        _check_transfer_id(transfer_id)
        return await self._call("GET", transfer_path(transfer_id), None, self._deadline(deadline))

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None, deadline: Deadline
    ) -> CallTransfer:
        retry = 0
        while True:
            await self._limiter.acquire(deadline)
            timeout = self._attempt_timeout(deadline)
            started = time.monotonic()
            try:
                # The whole attempt is bounded here; httpx's timeout bounds each phase.
                async with asyncio.timeout(timeout):
                    response = await self._send(method, self._url(path), body, timeout)
                self._answered(method, path, response, started)
                return interpret(response)
            except TimeoutError:
                error: GenAgentError = ApiTimeoutError(f"no answer within {timeout:.2f} s")
                self._unanswered(method, path, error, started)
            except (httpx.HTTPError, aiohttp.ClientError, OSError) as exc:
                error = _async_transport_error(exc, timeout)
                self._unanswered(method, path, error, started)
            except GenAgentError as exc:
                error = exc
            retry += 1
            await asyncio.sleep(self._after_failure(method, path, error, retry, deadline))

    async def _send(
        self, method: str, url: httpx.URL | str, body: dict[str, Any] | None, timeout: float
    ) -> httpx.Response:
        """What ``AsyncClient.request`` does for these requests, minus what they never use
        (redirects, event hooks, cookies, a relative URL): the client's headers, the
        credentials from its auth, a JSON body, the timeout, the transport (or proxy)
        httpx picks for the URL; the whole answer read, the connection given back."""
        http = self._http
        request = httpx.Request(
            method,
            url,
            headers=http.headers,
            json=body,
            extensions={
                "timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
            },
        )
        next(self._auth.auth_flow(request))  # sets the asapp-api-* headers
        response = await http._transport_for_url(request.url).handle_async_request(request)
        response.request = request
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncGenAgentClient(base_url={self.settings.base_url!r})"


def _async_transport_error(exc: BaseException, timeout: float) -> TransportError:
    """A failed attempt of the async client as ApiTimeoutError or ApiConnectionError.

    httpx_aiohttp turns some aiohttp errors into httpx's, not always the right one (a
    connection the server closed comes out as a ConnectTimeout), and lets the others
    through unchanged: the aiohttp (or OS) error, when there is one, decides.
    """
    cause = exc.__cause__ if isinstance(exc, httpx.HTTPError) else exc
    if not isinstance(cause, aiohttp.ClientError | OSError):
        if isinstance(exc, httpx.HTTPError):
            return transport_error(exc, timeout)
        cause = exc
    if isinstance(cause, TimeoutError):  # aiohttp's ServerTimeoutError and its kinds
        return ApiTimeoutError(f"no answer within {timeout:.2f} s ({type(cause).__name__})")
    # One short line, without the URL a ClientResponseError carries (it names the transfer).
    text = cause.message if isinstance(cause, aiohttp.ClientResponseError) else str(cause)
    text = " ".join(str(text).split())[:200]
    return ApiConnectionError(f"{type(cause).__name__}: {text}" if text else type(cause).__name__)


def _check_transfer_id(transfer_id: Any) -> None:
    if not isinstance(transfer_id, str) or not transfer_id.strip():
        raise InvalidRequestError("the call transfer id must be a non-empty string")


def _path_label(path: str) -> str:
    return "call-transfers" if path == COLLECTION_PATH else "call-transfers/{id}"
