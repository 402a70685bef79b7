"""What the GenerativeAgent clients report: request metrics, latency and failure lines.

One hook for both the sync and the async client. Paths become two fixed endpoint
labels, so no transfer id reaches a metric; a failure line names the HTTP status, the
error code and ASAPP's requestId (what ASAPP support asks for), never a secret.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Histogram

from adapter.genagent.errors import (
    ApiError,
    ApiTimeoutError,
    AuthenticationError,
    ConflictError,
    GenAgentError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    TransportError,
)
from adapter.genagent.protocol import COLLECTION_PATH
from adapter.observe.metrics import API_LATENCY, API_REQUESTS

log = logging.getLogger("adapter.genagent")


def endpoint(method: str, path: str) -> str:
    """``POST call-transfers`` or ``GET call-transfers/{id}``: a label, not a path."""
    return f"{method} {'call-transfers' if path == COLLECTION_PATH else 'call-transfers/{id}'}"


def status_of(error: GenAgentError) -> str:
    """The status label of a failed attempt: the HTTP status, or what went wrong."""
    if isinstance(error, ApiError):
        return str(error.status)
    if isinstance(error, MalformedResponseError):
        return "malformed"
    if isinstance(error, ApiTimeoutError):
        return "timeout"
    if isinstance(error, TransportError):
        return "connection-error"
    return "error"


def attempt_finished(method: str, path: str, status: str, seconds: float) -> None:
    """Count one HTTP attempt and its time."""
    key = (method, path == COLLECTION_PATH, status)
    children = _ATTEMPT_CHILDREN.get(key)
    if children is None:
        name = endpoint(method, path)
        children = (API_REQUESTS.labels(name, status), API_LATENCY.labels(name))
        if len(_ATTEMPT_CHILDREN) < _MAX_CACHED:
            _ATTEMPT_CHILDREN[key] = children
    children[0].inc()
    children[1].observe(seconds)


# labels() validates and locks on every call; the few label sets an attempt can have
# are looked up once. Bounded anyway: a status is whatever the API answered.
_MAX_CACHED = 64
_ATTEMPT_CHILDREN: dict[tuple[str, bool, str], tuple[Counter, Histogram]] = {}


def request_failed(method: str, path: str, error: GenAgentError) -> None:
    """Log a request that failed for good (after any retries)."""
    if isinstance(error, NotFoundError | ConflictError):
        level = logging.DEBUG  # expected by the callers that ask (idempotent create, probes)
    elif isinstance(error, AuthenticationError | PermissionDeniedError):
        level = logging.ERROR  # every call will fail until the credentials are fixed
    else:
        level = logging.WARNING
    api = error if isinstance(error, ApiError) else None
    log.log(
        level,
        "GenerativeAgent %s failed: %s",
        endpoint(method, path),
        error,
        extra={
            "endpoint": endpoint(method, path),
            "status": status_of(error),
            "code": api.code if api else None,
            "request_id": api.request_id if api else None,
        },
    )
