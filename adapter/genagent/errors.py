"""One exception hierarchy for everything the GenerativeAgent API can do wrong.

GenAgentError
├── InvalidRequestError (also a ValueError): rejected locally, nothing was sent
├── ApiError: the API answered with an error status (status, code, request_id, message)
│   ├── BadRequestError 400, AuthenticationError 401, PermissionDeniedError 403,
│   │   NotFoundError 404, ConflictError 409, PayloadTooLargeError 413,
│   │   UnprocessableEntityError 422, RateLimitedError 429
│   └── ServerError 5xx
│       └── ServiceUnavailableError 503
├── MalformedResponseError: a 2xx whose body is not the documented call transfer
└── TransportError: no answer at all
    ├── ApiConnectionError: could not connect, or the connection broke
    └── ApiTimeoutError: the deadline ran out
"""

from __future__ import annotations

import re
from typing import Any


class GenAgentError(Exception):
    """Base class of every error raised by the GenerativeAgent client."""


class InvalidRequestError(GenAgentError, ValueError):
    """The request was rejected before anything was sent."""


class MalformedResponseError(GenAgentError):
    """The API answered 2xx, but not with a body this client understands."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransportError(GenAgentError):
    """No usable HTTP answer: connection failure or timeout."""


class ApiConnectionError(TransportError):
    """The API could not be reached, or the connection broke mid-request."""


class ApiTimeoutError(TransportError):
    """The caller's deadline ran out before the API answered."""


class ApiError(GenAgentError):
    """The API answered with an error status and (usually) the documented error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.request_id = request_id
        self.message = message
        detail = f"HTTP {status}"
        if code:
            detail += f" code={code}"
        if request_id:
            detail += f" requestId={request_id}"
        super().__init__(f"{detail}: {message}")


class BadRequestError(ApiError):
    """400: the API rejected the request body."""


class AuthenticationError(ApiError):
    """401: missing or wrong asapp-api-id / asapp-api-secret."""


class PermissionDeniedError(ApiError):
    """403: the credentials are valid but not allowed to use this API."""


class NotFoundError(ApiError):
    """404: no call transfer with that id."""


class ConflictError(ApiError):
    """409: a call transfer with that id already exists."""


class PayloadTooLargeError(ApiError):
    """413: the request body is too large."""


class UnprocessableEntityError(ApiError):
    """422: the request was well-formed but semantically invalid."""


class RateLimitedError(ApiError):
    """429: too many requests; ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, message, code=code, request_id=request_id)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx: the API failed."""


class ServiceUnavailableError(ServerError):
    """503: the API is temporarily unavailable."""


_TEXT_LIMIT = 500
# What the error body's text loses: control characters and lone surrogates
# (a forged log line, or a log handler that cannot encode them).
_UNSAFE_IN_TEXT = re.compile("[\x00-\x1f\x7f\ud800-\udfff\ufffe\uffff]")

_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitedError,
    503: ServiceUnavailableError,
}


def error_for_status(status: int, body: Any, *, retry_after: float | None = None) -> ApiError:
    """Build the ApiError subclass for ``status`` from the documented error body.

    The body is ``{"error": {"requestId", "code", "message"}}``; anything else
    (HTML from a proxy, empty, not JSON) still yields an error with the status.
    """
    code = request_id = None
    message = f"HTTP {status} without the documented error body"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = _text(error.get("code"))
        request_id = _text(error.get("requestId"))
        message = _text(error.get("message")) or message
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else ApiError
    if cls is RateLimitedError:
        return RateLimitedError(
            status, message, code=code, request_id=request_id, retry_after=retry_after
        )
    return cls(status, message, code=code, request_id=request_id)


def _text(value: Any) -> str | None:
    """A field of the error body as bounded, clean text; None unless a string or number."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = value if isinstance(value, str) else repr(value)
    return _UNSAFE_IN_TEXT.sub("", text[:_TEXT_LIMIT])
