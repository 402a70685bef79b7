"""The GenerativeAgent call-transfers client for asyncio code (the AMI worker): the
httpx API over aiohttp's connection pool (``httpx_aiohttp``), at about half the CPU per
request of httpx's own async transport, with the sync client's deadlines, retries, rate
limit and idempotent create (client_base.py).
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Self

import aiohttp
import httpx
from httpx_aiohttp import HttpxAiohttpClient

from adapter.config import GenAgentSettings
from adapter.genagent.client_base import ClientBase, DeadlineArg, check_transfer_id
from adapter.genagent.errors import (
    ApiConnectionError,
    ApiTimeoutError,
    ConflictError,
    GenAgentError,
    TransportError,
)
from adapter.genagent.models import CallTransfer
from adapter.genagent.protocol import (
    COLLECTION_PATH,
    cap_answer,
    check_created,
    interpret,
    transfer_path,
    transport_error,
)
from adapter.genagent.ratelimit import AsyncRateLimiter, SharedWindow, StartSlot
from adapter.genagent.requests import TransferRequest
from adapter.genagent.retry import Deadline, RetryPolicy


class AsyncGenAgentClient(ClientBase):
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
        self._set_headers(self._http)

    async def create_transfer(
        self,
        request: TransferRequest,
        *,
        deadline: DeadlineArg = None,
        slot: StartSlot | None = None,
    ) -> CallTransfer:
        """POST a new call transfer; a 409 for the same id returns the saved transfer.
        ``slot``: a start reserved ahead for this request (see ratelimit.StartSlot)."""
        body = self._request_body(request)
        limit = self._deadline(deadline)
        try:
            created = await self._call("POST", COLLECTION_PATH, body, limit, slot)
        except ConflictError:
            saved = await self._call("GET", transfer_path(request.id), None, limit)
            return self._check_same_conversation(request, saved)
        return check_created(request, created)

    async def get_transfer(
        self, transfer_id: str, *, deadline: DeadlineArg = None, slot: StartSlot | None = None
    ) -> CallTransfer:
        """GET one call transfer by id (``slot``: as for ``create_transfer``)."""
        check_transfer_id(transfer_id)
        path = transfer_path(transfer_id)
        return await self._call("GET", path, None, self._deadline(deadline), slot)

    async def _call(
        self,
        method: str,
        path: str,
        body: bytes | None,
        deadline: Deadline,
        slot: StartSlot | None = None,
    ) -> CallTransfer:
        retry = 0
        while True:
            await self._limiter.acquire(deadline, None if retry else slot)
            timeout = self._attempt_timeout(deadline)
            started = time.monotonic()
            try:
                # The whole attempt is bounded here; httpx's timeout bounds each phase.
                async with asyncio.timeout(timeout):
                    response = await self._send(self._request(method, path, body, timeout))
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

    async def _send(self, request: httpx.Request) -> httpx.Response:
        """Straight to the transport (or proxy) httpx picks for the URL; the whole answer
        read, the connection given back."""
        response = await self._http._transport_for_url(request.url).handle_async_request(request)
        response.request = request
        cap_answer(response, asynchronous=True)
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
