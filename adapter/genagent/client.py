"""The GenerativeAgent call-transfers client for threaded code (the Flask app under
gunicorn): one pooled httpx client per process. Every call runs under a deadline,
retries only what ASAPP says is safe to retry, keeps bursts under the spike limit, and
makes a create idempotent: a 409 for an id already saved returns that transfer.
The asyncio client (the AMI worker) is in async_client.py.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Self

import httpx

from adapter.config import GenAgentSettings
from adapter.genagent.client_base import ClientBase, DeadlineArg, check_transfer_id
from adapter.genagent.errors import ConflictError, GenAgentError
from adapter.genagent.models import CallTransfer
from adapter.genagent.protocol import (
    COLLECTION_PATH,
    cap_answer,
    check_created,
    interpret,
    transfer_path,
    transport_error,
)
from adapter.genagent.ratelimit import RateLimiter, SharedWindow, StartSlot
from adapter.genagent.requests import TransferRequest
from adapter.genagent.retry import Deadline, RetryPolicy


class GenAgentClient(ClientBase):
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
        self._set_headers(self._http)

    def create_transfer(
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
            created = self._call("POST", COLLECTION_PATH, body, limit, slot)
        except ConflictError:
            saved = self._call("GET", transfer_path(request.id), None, limit)
            return self._check_same_conversation(request, saved)
        return check_created(request, created)

    def get_transfer(
        self, transfer_id: str, *, deadline: DeadlineArg = None, slot: StartSlot | None = None
    ) -> CallTransfer:
        """GET one call transfer by id (``slot``: as for ``create_transfer``)."""
        check_transfer_id(transfer_id)
        path = transfer_path(transfer_id)
        return self._call("GET", path, None, self._deadline(deadline), slot)

    def _call(
        self,
        method: str,
        path: str,
        body: bytes | None,
        deadline: Deadline,
        slot: StartSlot | None = None,
    ) -> CallTransfer:
        retry = 0
        while True:
            self._limiter.acquire(deadline, None if retry else slot)
            timeout = self._attempt_timeout(deadline)
            started = time.monotonic()
            try:
                response = self._send(self._request(method, path, body, timeout))
                self._answered(method, path, response, started)
                return interpret(response)
            except httpx.HTTPError as exc:
                error: GenAgentError = transport_error(exc, timeout)
                self._unanswered(method, path, error, started)
            except GenAgentError as exc:
                error = exc
            retry += 1
            time.sleep(self._after_failure(method, path, error, retry, deadline))

    def _send(self, request: httpx.Request) -> httpx.Response:
        """Straight to the transport httpx picks for the URL; the whole answer read."""
        response = self._http._transport_for_url(request.url).handle_request(request)
        response.request = request
        cap_answer(response)
        try:
            response.read()
        finally:
            response.close()
        return response

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
