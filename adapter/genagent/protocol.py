"""The call-transfers API on the wire: paths, auth, and turning responses into results.

Pure functions over httpx objects, shared by the sync and async clients.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import Any
from urllib.parse import quote

import httpx

from adapter import __version__
from adapter.config import Secret
from adapter.genagent.errors import (
    ApiConnectionError,
    ApiTimeoutError,
    MalformedResponseError,
    TransportError,
    error_for_status,
)
from adapter.genagent.models import CallTransfer, TransferStatus
from adapter.genagent.requests import PhoneNumberTransferRequest, TransferRequest
from adapter.genagent.retry import parse_retry_after

COLLECTION_PATH = "/generativeagent/v1/call-transfers"
USER_AGENT = f"genagent-adapter/{__version__}"
#: The longest answer read: a call transfer is a few KiB even with a large outputContext.
MAX_ANSWER_BYTES = 1024 * 1024


def transfer_path(transfer_id: str) -> str:
    """The path of one call transfer; the id is percent-encoded as a single segment."""
    segment = quote(transfer_id, safe="")
    if segment in (".", ".."):  # a dot segment would be resolved away by the URL parser
        segment = segment.replace(".", "%2E")
    return f"{COLLECTION_PATH}/{segment}"


class AsappAuth(httpx.Auth):
    """Adds the asapp-api-id / asapp-api-secret headers to each request.

    Kept out of the client's default headers so that no repr of the client shows them.
    """

    def __init__(self, api_id: str, api_secret: Secret) -> None:
        self._api_id = api_id
        self._api_secret = api_secret

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["asapp-api-id"] = self._api_id
        request.headers["asapp-api-secret"] = self._api_secret.reveal()
        yield request

    def __repr__(self) -> str:
        return "AsappAuth(api_id=..., api_secret='***')"


def cap_answer(
    response: httpx.Response, *, asynchronous: bool = False, limit: int = MAX_ANSWER_BYTES
) -> None:
    """Make reading ``response`` raise MalformedResponseError past ``limit`` bytes."""
    status = response.status_code

    def too_long() -> MalformedResponseError:
        return MalformedResponseError(
            f"HTTP {status} with an answer longer than {limit} bytes", status=status
        )

    wrap = _AsyncCapped if asynchronous else _Capped
    response.stream = wrap(response.stream, limit, too_long)


_Error = Callable[[], MalformedResponseError]


class _Capped(httpx.SyncByteStream):
    def __init__(self, stream: Any, limit: int, error: _Error) -> None:
        self._stream, self._limit, self._error = stream, limit, error

    def __iter__(self) -> Iterator[bytes]:
        size = 0
        for chunk in self._stream:
            size += len(chunk)
            if size > self._limit:
                raise self._error()
            yield chunk

    def close(self) -> None:
        self._stream.close()


class _AsyncCapped(httpx.AsyncByteStream):
    def __init__(self, stream: Any, limit: int, error: _Error) -> None:
        self._stream, self._limit, self._error = stream, limit, error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in self._stream:
            size += len(chunk)
            if size > self._limit:
                raise self._error()
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


def interpret(response: httpx.Response) -> CallTransfer:
    """A 2xx call transfer, or the ApiError / MalformedResponseError the response means."""
    if response.status_code >= 400:
        raise error_for_status(
            response.status_code,
            _json_or_none(response),
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    if not 200 <= response.status_code < 300:
        raise MalformedResponseError(
            f"unexpected HTTP {response.status_code}", status=response.status_code
        )
    try:
        data = load_json(response.content)
    except (ValueError, RecursionError):
        raise MalformedResponseError(
            f"HTTP {response.status_code} with a body that is not usable JSON",
            status=response.status_code,
        ) from None
    return CallTransfer.from_json(data)


def load_json(content: bytes) -> Any:
    """Strict JSON: ValueError for invalid UTF-8, NaN/Infinity, a number too big for a
    float or too long for an int; RecursionError for nesting too deep."""
    # As json.loads reads bytes, with one decoder made once (json.loads builds one per
    # call when given hooks).
    return _STRICT.decode(content.decode(json.detect_encoding(content), "surrogatepass"))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError("a number too big for a float")
    return value


_STRICT = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)


def check_created(request: TransferRequest, transfer: CallTransfer) -> CallTransfer:
    """An ACTIVE PHONE_NUMBER transfer is useless without its number: say so plainly."""
    if (
        isinstance(request, PhoneNumberTransferRequest)
        and transfer.status == TransferStatus.ACTIVE
        and not transfer.transfer_number
    ):
        raise MalformedResponseError(
            "call transfer: required field 'phoneNumber.transferNumber' is missing"
        )
    return transfer


def transport_error(exc: httpx.HTTPError, timeout: float) -> TransportError:
    """Map an httpx failure onto the client's hierarchy (without echoing any header)."""
    if isinstance(exc, httpx.TimeoutException):
        return ApiTimeoutError(f"no answer within {timeout:.2f} s ({type(exc).__name__})")
    return ApiConnectionError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return load_json(response.content)
    except (ValueError, RecursionError):
        return None
