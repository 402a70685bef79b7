"""GenAgentClient and AsyncGenAgentClient against an httpx.MockTransport.

Every behavioural test takes the ``connect`` fixture and so runs once against the
synchronous client and once against the asyncio one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import traceback
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from adapter.genagent import (
    ApiConnectionError,
    ApiError,
    ApiTimeoutError,
    AsyncGenAgentClient,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    Deadline,
    GenAgentClient,
    GenAgentError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PhoneNumberTransferRequest,
    RateLimitedError,
    RetryPolicy,
    ServerError,
    ServiceUnavailableError,
    SipTransferRequest,
    TransferKind,
    TransferStatus,
    UnprocessableEntityError,
)
from adapter.genagent.ratelimit import AsyncRateLimiter, RateLimiter, SlidingWindow
from adapter.genagent.retry import parse_retry_after
from tests.genagent_helpers import (
    API_ID,
    COLLECTION_PATH,
    DOC_REQUEST_ID,
    DRIVERS,
    FAST_POLICY,
    NO_RETRY_POLICY,
    SECRET_VALUE,
    ScriptedHandler,
    error_body,
    fail,
    make_settings,
    reply,
    transfer_body,
)

PHONE_REQUEST = PhoneNumberTransferRequest(
    id="t-1",
    external_conversation_id="c-1",
    country="US",
    task_name="call_routing",
    input_variables={"accountNumber": "3434", "name": "John Doe"},
)
SIP_REQUEST = SipTransferRequest(
    id="t-1",
    external_conversation_id="c-1",
    return_uri="sip:user@customer-sbc.example.com;User-to-User=UUI-12345",
    return_transfer_type="REFER",
)
SIP_CREATED: dict[str, Any] = {
    "id": "t-1",
    "externalConversationId": "c-1",
    "status": "ACTIVE",
    "type": "SIP",
    "sip": {"returnURI": "sip:user@customer-sbc.example.com;User-to-User=UUI-12345"},
    "createdAt": "2025-01-15T13:06:00Z",
}
COMPLETED: dict[str, Any] = transfer_body(
    status="COMPLETED",
    createdAt="2025-06-19T13:38:40Z",
    completedAt="2025-06-19T13:39:12Z",
    outputContext={
        "transferType": "SYSTEM",
        "currentTaskName": "currentTaskName",
        "referenceVariables": {"reference_variable_1": "4343"},
        "transferVariables": {"transfer_variable_": "4343"},
    },
)


@pytest.fixture(params=["sync", "async"])
def connect(request):
    """``connect(handler, policy=..., **settings)`` -> a driver over a fresh client."""
    drivers = []

    def factory(handler, *, policy=FAST_POLICY, **settings):
        driver = DRIVERS[request.param](make_settings(**settings), handler, policy)
        drivers.append(driver)
        return driver

    yield factory
    for driver in drivers:
        driver.close()


@pytest.fixture
def recorded_sleeps(monkeypatch):
    """Replace time.sleep and asyncio.sleep by no-ops that record what was asked."""
    sleeps: list[float] = []

    def fake_sleep(seconds):
        sleeps.append(seconds)

    async def fake_async_sleep(seconds, result=None):
        sleeps.append(seconds)
        return result

    monkeypatch.setattr(time, "sleep", fake_sleep)
    monkeypatch.setattr(asyncio, "sleep", fake_async_sleep)
    return sleeps


def call(driver, operation):
    """Run ``operation`` ("create" or "get") with the standard request."""
    if operation == "create":
        return driver.create(PHONE_REQUEST)
    return driver.get("t-1")


# --- requests on the wire -----------------------------------------------------------


def test_create_sends_auth_headers_and_the_documented_body(connect):
    handler = ScriptedHandler(reply(200, transfer_body()))
    driver = connect(handler)

    driver.create(PHONE_REQUEST)

    assert handler.count == 1
    sent = handler.requests[0]
    assert sent.method == "POST"
    assert str(sent.url) == "https://ga.test/generativeagent/v1/call-transfers"
    assert sent.headers["asapp-api-id"] == API_ID
    assert sent.headers["asapp-api-secret"] == SECRET_VALUE
    assert sent.headers["content-type"] == "application/json"
    assert json.loads(sent.content) == PHONE_REQUEST.to_json()
    assert json.loads(sent.content) == {
        "id": "t-1",
        "externalConversationId": "c-1",
        "type": "PHONE_NUMBER",
        "phoneNumber": {"country": "US"},
        "inputContext": {
            "taskName": "call_routing",
            "inputVariables": {"accountNumber": "3434", "name": "John Doe"},
        },
    }


def test_sip_create_sends_the_sip_body(connect):
    handler = ScriptedHandler(reply(200, SIP_CREATED))
    driver = connect(handler)

    transfer = driver.create(SIP_REQUEST)

    assert json.loads(handler.requests[0].content) == SIP_REQUEST.to_json()
    assert transfer.type is TransferKind.SIP
    assert transfer.sip is not None
    assert transfer.sip.return_uri == SIP_REQUEST.return_uri


def test_auth_headers_are_sent_on_every_request_including_retries(connect):
    handler = ScriptedHandler(
        reply(429, error_body("429-01", "Too Many Requests")),
        reply(503, error_body("503-01", "Service Unavailable")),
        fail(httpx.ConnectError, "connection refused"),
        reply(200, transfer_body()),
    )
    driver = connect(handler)

    driver.create(PHONE_REQUEST)

    assert handler.count == 4
    for sent in handler.requests:
        assert sent.headers["asapp-api-id"] == API_ID
        assert sent.headers["asapp-api-secret"] == SECRET_VALUE
        assert json.loads(sent.content) == PHONE_REQUEST.to_json()


def test_get_sends_auth_headers_and_no_body(connect):
    handler = ScriptedHandler(reply(200, COMPLETED))
    driver = connect(handler)

    driver.get("t-1")

    sent = handler.requests[0]
    assert sent.method == "GET"
    assert sent.url.raw_path == b"/generativeagent/v1/call-transfers/t-1"
    assert sent.headers["asapp-api-id"] == API_ID
    assert sent.headers["asapp-api-secret"] == SECRET_VALUE
    assert sent.content == b""


def test_create_returns_the_parsed_transfer(connect):
    driver = connect(ScriptedHandler(reply(200, transfer_body())))

    transfer = driver.create(PHONE_REQUEST)

    assert transfer.id == "t-1"
    assert transfer.external_conversation_id == "c-1"
    assert transfer.status is TransferStatus.ACTIVE
    assert transfer.type is TransferKind.PHONE_NUMBER
    assert transfer.transfer_number == "+19991234"
    assert transfer.expire_at == datetime(2025, 6, 19, 13, 39, 40, tzinfo=UTC)


def test_get_returns_the_parsed_transfer(connect):
    driver = connect(ScriptedHandler(reply(200, COMPLETED)))

    transfer = driver.get("t-1")

    assert transfer.status is TransferStatus.COMPLETED
    assert transfer.output_context is not None
    assert transfer.output_context.transfer_variables == {"transfer_variable_": "4343"}
    assert transfer.completed_at == datetime(2025, 6, 19, 13, 39, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("transfer_id", "raw_segment"),
    [
        ("a/b c", b"a%2Fb%20c"),
        ("x?y#z", b"x%3Fy%23z"),
        ("100%", b"100%25"),
        ("é", b"%C3%A9"),
    ],
)
def test_get_percent_encodes_the_id_as_one_path_segment(connect, transfer_id, raw_segment):
    handler = ScriptedHandler(reply(200, transfer_body(transfer_id=transfer_id)))
    driver = connect(handler)

    driver.get(transfer_id)

    sent = handler.requests[0]
    assert sent.url.raw_path == COLLECTION_PATH.encode() + b"/" + raw_segment
    assert sent.url.query == b""


@pytest.mark.parametrize("base_url", ["https://gw.test/asapp", "https://gw.test/asapp/"])
def test_a_base_url_with_a_path_keeps_it_on_both_endpoints(connect, base_url):
    handler = ScriptedHandler(
        reply(201, transfer_body(transfer_id=PHONE_REQUEST.id)),
        reply(200, transfer_body(transfer_id="t-7")),
    )
    driver = connect(handler, base_url=base_url)

    driver.create(PHONE_REQUEST)
    driver.get("t-7")

    created, got = handler.requests
    assert (created.method, str(created.url)) == ("POST", f"https://gw.test/asapp{COLLECTION_PATH}")
    assert (got.method, str(got.url)) == ("GET", f"https://gw.test/asapp{COLLECTION_PATH}/t-7")


@pytest.mark.parametrize("transfer_id", ["..", "."])
def test_dot_segment_ids_stay_inside_the_collection(connect, transfer_id):
    handler = ScriptedHandler(reply(200, transfer_body(transfer_id=transfer_id)))
    driver = connect(handler)

    try:
        driver.get(transfer_id)
    except InvalidRequestError:
        assert handler.count == 0  # rejecting such an id locally is also acceptable
        return
    collection, _, segment = handler.requests[0].url.raw_path.rpartition(b"/")
    assert collection == COLLECTION_PATH.encode()
    assert unquote(segment.decode()) == transfer_id


# --- error statuses -----------------------------------------------------------------

ERROR_CASES = [
    (400, BadRequestError, "400-01", "Bad request"),
    (401, AuthenticationError, "401-01", "Unauthorized"),
    (403, PermissionDeniedError, "403-01", "Forbidden Response"),
    (404, NotFoundError, "404-01", "Not Found"),
    (409, ConflictError, "409-01", "Conflict"),
    (413, PayloadTooLargeError, "413-01", "Request Entity Too Large"),
    (422, UnprocessableEntityError, "422-01", "Unprocessable Entity"),
    (429, RateLimitedError, "429-01", "Too Many Requests"),
    (503, ServiceUnavailableError, "503-01", "Service Unavailable"),
    (500, ServerError, "500-01", "Internal server error"),
    (502, ServerError, "502-01", "Bad Gateway"),
]
ERROR_PARAMS = [
    pytest.param(operation, *case, id=f"{operation}-{case[0]}")
    for operation in ("create", "get")
    for case in ERROR_CASES
    if not (operation == "create" and case[0] == 409)  # a 409 on create is idempotency
]


@pytest.mark.parametrize(("operation", "status", "error_class", "code", "message"), ERROR_PARAMS)
def test_error_status_maps_to_its_exception(connect, operation, status, error_class, code, message):
    handler = ScriptedHandler(reply(status, error_body(code, message)))
    driver = connect(handler, policy=NO_RETRY_POLICY)

    with pytest.raises(ApiError) as caught:
        call(driver, operation)

    error = caught.value
    assert type(error) is error_class
    assert error.status == status
    assert error.code == code
    assert error.request_id == DOC_REQUEST_ID
    assert error.message == message
    assert code in str(error)
    assert DOC_REQUEST_ID in str(error)
    assert message in str(error)
    assert handler.count == 1
    if status >= 500:
        assert isinstance(error, ServerError)
    else:
        assert not isinstance(error, ServerError)


def test_rate_limited_error_carries_retry_after(connect):
    handler = ScriptedHandler(
        reply(429, error_body("429-01", "Too Many Requests"), headers={"Retry-After": "7"})
    )
    driver = connect(handler, policy=NO_RETRY_POLICY)

    with pytest.raises(RateLimitedError) as caught:
        driver.get("t-1")

    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize(
    ("status", "error_class", "content"),
    [
        (502, ServerError, b"<html><body>502 Bad Gateway</body></html>"),
        (503, ServiceUnavailableError, b""),
        (404, NotFoundError, b"Not Found"),
        (401, AuthenticationError, b'{"message": "no error envelope"}'),
        (400, BadRequestError, b'{"error": "just a string"}'),
        (429, RateLimitedError, b"[1, 2]"),
    ],
)
def test_error_without_the_documented_body_still_maps_by_status(
    connect, status, error_class, content
):
    handler = ScriptedHandler(reply(status, content=content))
    driver = connect(handler, policy=NO_RETRY_POLICY)

    with pytest.raises(ApiError) as caught:
        driver.get("t-1")

    assert type(caught.value) is error_class
    assert caught.value.status == status
    assert caught.value.code is None
    assert caught.value.request_id is None
    assert str(status) in str(caught.value)


@pytest.mark.parametrize("operation", ["create", "get"])
@pytest.mark.parametrize("content", [b"{not json", b"", b"<html>ok</html>", b"\xff\xfe\x00"])
def test_2xx_with_malformed_json_is_malformed_response(connect, operation, content):
    handler = ScriptedHandler(reply(200, content=content))
    driver = connect(handler)

    with pytest.raises(MalformedResponseError) as caught:
        call(driver, operation)

    assert caught.value.status == 200
    assert handler.count == 1


@pytest.mark.parametrize("operation", ["create", "get"])
@pytest.mark.parametrize("payload", [[], "ACTIVE", None, 5])
def test_2xx_with_json_that_is_not_an_object_is_malformed_response(connect, operation, payload):
    handler = ScriptedHandler(reply(200, content=json.dumps(payload).encode()))
    driver = connect(handler)

    with pytest.raises(MalformedResponseError, match="object"):
        call(driver, operation)


@pytest.mark.parametrize("operation", ["create", "get"])
def test_2xx_without_id_is_malformed_response_naming_it(connect, operation):
    body = transfer_body()
    del body["id"]
    driver = connect(ScriptedHandler(reply(200, body)))

    with pytest.raises(MalformedResponseError, match=r"\bid\b"):
        call(driver, operation)


@pytest.mark.parametrize("section", [{"country": "US", "expireAt": "2025-06-19T13:39:40Z"}, None])
def test_active_phone_number_created_without_transfer_number_is_malformed(connect, section):
    body = transfer_body()
    if section is None:
        del body["phoneNumber"]
    else:
        body["phoneNumber"] = section
    handler = ScriptedHandler(reply(200, body))
    driver = connect(handler)

    with pytest.raises(MalformedResponseError, match=r"phoneNumber\.transferNumber"):
        driver.create(PHONE_REQUEST)
    assert handler.count == 1


def test_active_sip_transfer_needs_no_transfer_number(connect):
    driver = connect(ScriptedHandler(reply(200, SIP_CREATED)))

    assert driver.create(SIP_REQUEST).status is TransferStatus.ACTIVE


# --- retries ------------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["create", "get"])
def test_429_then_200_succeeds_after_one_retry(connect, operation):
    handler = ScriptedHandler(
        reply(429, error_body("429-01", "Too Many Requests")),
        reply(200, transfer_body()),
    )
    driver = connect(handler)

    transfer = call(driver, operation)

    assert transfer.id == "t-1"
    assert handler.count == 2


@pytest.mark.parametrize("operation", ["create", "get"])
def test_503_twice_then_200_succeeds(connect, operation):
    handler = ScriptedHandler(
        reply(503, error_body("503-01", "Service Unavailable")),
        reply(503, error_body("503-01", "Service Unavailable")),
        reply(200, transfer_body()),
    )
    driver = connect(handler)

    assert call(driver, operation).id == "t-1"
    assert handler.count == 3


@pytest.mark.parametrize("operation", ["create", "get"])
@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (500, ServerError),
        (502, ServerError),
        (503, ServiceUnavailableError),
        (429, RateLimitedError),
    ],
)
def test_retryable_status_gives_up_after_four_attempts(connect, operation, status, error_class):
    handler = ScriptedHandler(reply(status, error_body(f"{status}-01", "nope")))
    driver = connect(handler)

    with pytest.raises(error_class) as caught:
        call(driver, operation)

    assert type(caught.value) is error_class
    assert caught.value.status == status
    assert handler.count == 4


@pytest.mark.parametrize("operation", ["create", "get"])
def test_connection_errors_are_retried_then_raise_api_connection_error(connect, operation):
    handler = ScriptedHandler(fail(httpx.ConnectError, "connection refused"))
    driver = connect(handler)

    with pytest.raises(ApiConnectionError):
        call(driver, operation)

    assert handler.count == 4


@pytest.mark.parametrize("operation", ["create", "get"])
def test_a_connection_error_then_success(connect, operation):
    handler = ScriptedHandler(
        fail(httpx.RemoteProtocolError, "server disconnected"),
        fail(httpx.ConnectError, "connection refused"),
        reply(200, transfer_body()),
    )
    driver = connect(handler)

    assert call(driver, operation).id == "t-1"
    assert handler.count == 3


@pytest.mark.parametrize("operation", ["create", "get"])
def test_read_timeouts_are_retried_then_raise_api_timeout_error(connect, operation):
    handler = ScriptedHandler(fail(httpx.ReadTimeout, "timed out"))
    driver = connect(handler)

    with pytest.raises(ApiTimeoutError):
        call(driver, operation)

    assert handler.count == 4


@pytest.mark.parametrize("operation", ["create", "get"])
def test_a_read_timeout_then_success(connect, operation):
    handler = ScriptedHandler(fail(httpx.ReadTimeout, "timed out"), reply(200, transfer_body()))
    driver = connect(handler)

    assert call(driver, operation).id == "t-1"
    assert handler.count == 2


@pytest.mark.parametrize("operation", ["create", "get"])
@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (413, PayloadTooLargeError),
        (422, UnprocessableEntityError),
    ],
)
def test_other_4xx_are_sent_exactly_once(connect, operation, status, error_class):
    handler = ScriptedHandler(
        reply(status, error_body(f"{status}-01", "no")), reply(200, transfer_body())
    )
    driver = connect(handler)  # a policy that does retry 429 and 5xx

    with pytest.raises(error_class):
        call(driver, operation)

    assert handler.count == 1


def test_409_on_get_is_sent_exactly_once(connect):
    handler = ScriptedHandler(reply(409, error_body("409-01", "Conflict")), reply(200, COMPLETED))
    driver = connect(handler)

    with pytest.raises(ConflictError):
        driver.get("t-1")

    assert handler.count == 1


def test_retry_after_is_honoured(connect, recorded_sleeps):
    handler = ScriptedHandler(
        reply(429, error_body("429-01", "Too Many Requests"), headers={"Retry-After": "2"}),
        reply(200, transfer_body()),
    )
    driver = connect(handler, deadline=5.0)

    assert driver.get("t-1").id == "t-1"
    assert handler.count == 2
    assert recorded_sleeps == [2.0]


def test_backoff_follows_the_server_error_schedule(connect, recorded_sleeps):
    policy = RetryPolicy(server_error=(0.5, 1.0, 2.0), jitter=0.2)
    handler = ScriptedHandler(reply(500, error_body("500-01", "boom")))
    driver = connect(handler, policy=policy, deadline=10.0)

    with pytest.raises(ServerError):
        driver.get("t-1")

    assert handler.count == 4
    assert len(recorded_sleeps) == 3
    for waited, base in zip(recorded_sleeps, (0.5, 1.0, 2.0), strict=True):
        assert base * 0.8 <= waited <= base * 1.2


@pytest.mark.parametrize("where", ["settings", "call"])
def test_retries_stop_when_the_deadline_would_be_passed(connect, where):
    handler = ScriptedHandler(
        reply(429, error_body("429-01", "Too Many Requests"), headers={"Retry-After": "5"}),
        reply(200, transfer_body()),
    )
    if where == "settings":
        driver = connect(handler, deadline=0.3)
        run = lambda: driver.get("t-1")  # noqa: E731
    else:
        driver = connect(handler, deadline=30.0)
        run = lambda: driver.get("t-1", deadline=0.3)  # noqa: E731

    started = time.monotonic()
    with pytest.raises(RateLimitedError) as caught:
        run()
    elapsed = time.monotonic() - started

    assert handler.count == 1
    assert caught.value.retry_after == 5.0
    assert elapsed < 0.25


def test_connection_retry_stops_when_the_backoff_would_pass_the_deadline(connect):
    handler = ScriptedHandler(fail(httpx.ConnectError, "refused"), reply(200, transfer_body()))
    driver = connect(handler, policy=RetryPolicy(server_error=(1.0, 1.0, 1.0)), deadline=0.3)

    started = time.monotonic()
    with pytest.raises(ApiConnectionError):
        driver.create(PHONE_REQUEST)

    assert handler.count == 1
    assert time.monotonic() - started < 0.25


def test_an_explicit_deadline_object_is_used(connect):
    handler = ScriptedHandler(
        reply(429, error_body("429-01", "Too Many Requests"), headers={"Retry-After": "1"}),
        reply(200, transfer_body()),
    )
    driver = connect(handler, deadline=30.0)

    with pytest.raises(RateLimitedError):
        driver.get("t-1", deadline=Deadline.after(0.5))

    assert handler.count == 1


# --- the retry policy itself --------------------------------------------------------


def rate_limited(retry_after=None):
    return RateLimitedError(429, "Too Many Requests", retry_after=retry_after)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_policy_uses_retry_after_instead_of_the_schedule():
    policy = RetryPolicy(rate_limited=(0.01, 0.02, 0.04))

    assert policy.delay_before_retry(rate_limited(3.0), 1) == 3.0
    assert policy.delay_before_retry(rate_limited(0.0), 2) == 0.0
    # without the header the schedule (jittered) applies
    assert policy.delay_before_retry(rate_limited(), 1, rng=lambda: 0.5) == pytest.approx(0.01)
    assert policy.delay_before_retry(rate_limited(), 3, rng=lambda: 0.5) == pytest.approx(0.04)
    # Retry-After does not extend the number of retries
    assert policy.delay_before_retry(rate_limited(3.0), 4) is None


def test_next_wait_honours_retry_after_when_the_deadline_allows():
    clock = FakeClock()
    policy = RetryPolicy()

    assert policy.next_wait(rate_limited(2.0), 1, Deadline.after(4.0, clock)) == 2.0
    assert policy.next_wait(rate_limited(5.0), 1, Deadline.after(4.0, clock)) is None


def test_next_wait_refuses_a_wait_that_leaves_no_time_for_the_attempt():
    clock = FakeClock()
    policy = RetryPolicy(server_error=(1.0,), jitter=0.0, min_attempt_seconds=0.05)
    error = ServerError(500, "boom")

    assert policy.next_wait(error, 1, Deadline.after(1.06, clock)) == 1.0
    assert policy.next_wait(error, 1, Deadline.after(1.04, clock)) is None


def test_default_policy_matches_asapp_guidance():
    policy = RetryPolicy(jitter=0.0)
    connection = ApiConnectionError("refused")

    assert [policy.delay_before_retry(rate_limited(), n) for n in (1, 2, 3, 4)] == [
        1.0,
        2.0,
        4.0,
        None,
    ]
    assert [policy.delay_before_retry(connection, n) for n in (1, 2, 3, 4)] == [
        0.25,
        0.5,
        1.0,
        None,
    ]


def test_jitter_stays_within_its_bounds():
    policy = RetryPolicy(server_error=(1.0,), jitter=0.2)
    error = ServiceUnavailableError(503, "down")

    assert policy.delay_before_retry(error, 1, rng=lambda: 0.0) == pytest.approx(0.8)
    assert policy.delay_before_retry(error, 1, rng=lambda: 1.0) == pytest.approx(1.2)


@pytest.mark.parametrize(
    "error",
    [
        BadRequestError(400, "bad"),
        AuthenticationError(401, "who"),
        NotFoundError(404, "gone"),
        ConflictError(409, "dup"),
        UnprocessableEntityError(422, "no"),
        MalformedResponseError("junk"),
        InvalidRequestError("bad request"),
    ],
)
def test_policy_never_retries_other_errors(error):
    assert RetryPolicy().delay_before_retry(error, 1) is None


def test_parse_retry_after():
    now = datetime(2025, 6, 19, 13, 0, 0, tzinfo=UTC).timestamp()
    in_three_seconds = format_datetime(datetime(2025, 6, 19, 13, 0, 3, tzinfo=UTC), usegmt=True)

    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(in_three_seconds, now=lambda: now) == pytest.approx(3.0)
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None


# --- idempotent create --------------------------------------------------------------


@pytest.mark.parametrize("status", ["ACTIVE", "ONGOING", "COMPLETED", "EXPIRED", "completed"])
def test_create_409_returns_the_saved_transfer(connect, status):
    saved = transfer_body(status=status, createdAt="2025-06-19T13:38:40Z")
    handler = ScriptedHandler(reply(409, error_body("409-01", "Conflict")), reply(200, saved))
    driver = connect(handler)

    transfer = driver.create(PHONE_REQUEST)

    assert transfer.id == "t-1"
    assert transfer.status == status.upper()
    assert transfer.created_at == datetime(2025, 6, 19, 13, 38, 40, tzinfo=UTC)
    assert [r.method for r in handler.requests] == ["POST", "GET"]
    assert handler.requests[1].url.raw_path == b"/generativeagent/v1/call-transfers/t-1"
    assert handler.requests[1].headers["asapp-api-secret"] == SECRET_VALUE


def test_create_409_for_an_id_needing_encoding_gets_that_id(connect):
    request = PhoneNumberTransferRequest(id="a/b c", external_conversation_id="c-1")
    handler = ScriptedHandler(
        reply(409, error_body("409-01", "Conflict")),
        reply(200, transfer_body(transfer_id="a/b c")),
    )
    driver = connect(handler)

    assert driver.create(request).id == "a/b c"
    assert handler.requests[1].url.raw_path == b"/generativeagent/v1/call-transfers/a%2Fb%20c"


def test_create_409_for_another_conversation_is_a_conflict(connect):
    handler = ScriptedHandler(
        reply(409, error_body("409-01", "Conflict")),
        reply(200, transfer_body(conversation_id="someone-else")),
    )
    driver = connect(handler)

    with pytest.raises(ConflictError) as caught:
        driver.create(PHONE_REQUEST)

    assert caught.value.status == 409
    assert [r.method for r in handler.requests] == ["POST", "GET"]


def test_create_409_whose_saved_transfer_is_active_without_number_is_malformed(connect):
    saved = transfer_body()
    del saved["phoneNumber"]["transferNumber"]
    handler = ScriptedHandler(reply(409, error_body("409-01", "Conflict")), reply(200, saved))
    driver = connect(handler)

    with pytest.raises(MalformedResponseError, match=r"phoneNumber\.transferNumber"):
        driver.create(PHONE_REQUEST)


def test_create_timeout_then_409_returns_the_saved_transfer(connect):
    handler = ScriptedHandler(
        fail(httpx.ReadTimeout, "timed out"),
        reply(409, error_body("409-01", "Conflict")),
        reply(200, transfer_body()),
    )
    driver = connect(handler)

    transfer = driver.create(PHONE_REQUEST)

    assert transfer.id == "t-1"
    assert transfer.transfer_number == "+19991234"
    assert [r.method for r in handler.requests] == ["POST", "POST", "GET"]
    assert handler.bodies()[0] == handler.bodies()[1] == PHONE_REQUEST.to_json()


def test_create_409_then_get_404_raises_not_found(connect):
    handler = ScriptedHandler(
        reply(409, error_body("409-01", "Conflict")),
        reply(404, error_body("404-01", "Not Found")),
    )
    driver = connect(handler)

    with pytest.raises(NotFoundError):
        driver.create(PHONE_REQUEST)

    assert handler.count == 2


# --- secrets ------------------------------------------------------------------------


def test_repr_of_client_and_settings_hide_the_secret():
    settings = make_settings()
    clients = [
        GenAgentClient(settings, transport=httpx.MockTransport(lambda r: httpx.Response(200))),
        AsyncGenAgentClient(settings, transport=httpx.MockTransport(lambda r: httpx.Response(200))),
    ]
    try:
        for text in (repr(settings), str(settings), *(repr(c) for c in clients)):
            assert SECRET_VALUE not in text
        assert "https://ga.test" in repr(clients[0])
    finally:
        clients[0].close()
        asyncio.run(clients[1].aclose())


SECRET_SCENARIOS = {
    "400": [reply(400, error_body("400-01", "Bad request"))],
    "401": [reply(401, error_body("401-01", "Unauthorized"))],
    "401-no-body": [reply(401, content=b"denied")],
    "500-exhausted": [reply(500, error_body("500-01", "Internal server error"))],
    "429-deadline": [reply(429, error_body("429-01", "slow"), headers={"Retry-After": "60"})],
    "connect": [fail(httpx.ConnectError, "connection refused")],
    "timeout": [fail(httpx.ReadTimeout, "timed out")],
    "malformed": [reply(200, content=b"{oops")],
    "missing-id": [reply(200, {"status": "ACTIVE"})],
    "conflict": [
        reply(409, error_body("409-01", "Conflict")),
        reply(200, transfer_body(conversation_id="other")),
    ],
}


def exception_texts(error: BaseException) -> list[str]:
    texts = ["".join(traceback.format_exception(error))]
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args)]
        current = current.__cause__ or current.__context__
    return texts


@pytest.mark.parametrize("scenario", sorted(SECRET_SCENARIOS))
def test_raised_exceptions_never_contain_the_secret(connect, scenario):
    handler = ScriptedHandler(*SECRET_SCENARIOS[scenario])
    driver = connect(handler)

    with pytest.raises(GenAgentError) as caught:
        driver.create(PHONE_REQUEST)

    assert handler.count >= 1
    for text in exception_texts(caught.value):
        assert SECRET_VALUE not in text


def test_logs_never_contain_the_secret(connect, caplog):
    caplog.set_level(logging.DEBUG)
    handler = ScriptedHandler(
        reply(503, error_body("503-01", "Service Unavailable")),
        fail(httpx.ConnectError, "connection refused"),
        reply(429, error_body("429-01", "Too Many Requests"), headers={"Retry-After": "0"}),
        reply(200, transfer_body()),
    )
    driver = connect(handler)

    driver.create(PHONE_REQUEST)
    with pytest.raises(ServerError):
        connect(ScriptedHandler(reply(500, error_body("500-01", "boom")))).get("t-1")

    retry_warnings = [
        r for r in caplog.records if r.name == "adapter.genagent" and r.levelno == logging.WARNING
    ]
    assert len(retry_warnings) >= 6  # three retries in each call were logged
    assert caplog.records
    for record in caplog.records:
        assert SECRET_VALUE not in record.getMessage()
        assert SECRET_VALUE not in repr(record.args)
        assert SECRET_VALUE not in str(record.msg)
        assert SECRET_VALUE not in (record.exc_text or "")
    assert SECRET_VALUE not in caplog.text


# --- client-side rate limit ---------------------------------------------------------


def starts_in_window(starts: list[float], begin: float, width: float = 1.0) -> int:
    return sum(1 for s in starts if begin <= s < begin + width)


def test_sliding_window_allows_at_most_five_starts_per_second():
    window = SlidingWindow(5)
    starts = [window.reserve(now=0.0, latest=float("inf")) for _ in range(17)]

    assert starts == [0.0] * 5 + [1.0] * 5 + [2.0] * 5 + [3.0] * 2
    for begin in starts:
        assert starts_in_window(starts, begin) <= 5


def test_sliding_window_under_a_steady_stream_of_arrivals():
    window = SlidingWindow(5)
    arrivals = [i * 0.07 for i in range(60)]  # about 14 requests a second
    starts = []
    for now in arrivals:
        start = window.reserve(now=now, latest=float("inf"))
        assert start is not None
        assert start >= now
        starts.append(start)

    assert starts == sorted(starts)
    for begin in starts:
        assert starts_in_window(starts, begin) <= 5
    # and it is not slower than it must be: every full second has five starts
    assert starts_in_window(starts, starts[0]) == 5


def test_sliding_window_frees_slots_as_time_passes():
    window = SlidingWindow(5)
    for _ in range(5):
        assert window.reserve(now=0.0, latest=0.0) == 0.0

    assert window.reserve(now=1.5, latest=1.5) == 1.5


def test_reservation_past_latest_returns_none_and_reserves_nothing():
    window = SlidingWindow(5)
    for _ in range(5):
        window.reserve(now=0.0, latest=0.0)

    assert window.reserve(now=0.2, latest=0.9) is None
    assert window.reserve(now=0.2, latest=0.999) is None

    # Had either refused call taken a slot, only four of these would start at 1.0.
    later = [window.reserve(now=0.2, latest=float("inf")) for _ in range(6)]
    assert later == [1.0] * 5 + [2.0]


def test_sliding_window_rejects_a_zero_limit():
    with pytest.raises(ValueError, match="at least 1"):
        SlidingWindow(0)


def test_rate_limiter_sleeps_until_its_slot(recorded_sleeps):
    clock = FakeClock(0.0)
    limiter = RateLimiter(5, clock=clock)
    for _ in range(5):
        limiter.acquire(Deadline.after(10.0, clock))
    assert recorded_sleeps == []

    limiter.acquire(Deadline.after(10.0, clock))

    assert recorded_sleeps == [pytest.approx(1.0)]


def test_rate_limiter_with_a_full_window_and_a_short_deadline_raises_without_sleeping(
    recorded_sleeps,
):
    clock = FakeClock(0.0)
    limiter = RateLimiter(5, clock=clock)
    for _ in range(5):
        limiter.acquire(Deadline.after(10.0, clock))
    clock.now = 0.3

    with pytest.raises(ApiTimeoutError, match="rate limit"):
        limiter.acquire(Deadline.after(0.5, clock))

    assert recorded_sleeps == []


def test_async_rate_limiter_with_a_short_deadline_raises_without_sleeping(recorded_sleeps):
    clock = FakeClock(0.0)
    limiter = AsyncRateLimiter(5, clock=clock)

    async def scenario():
        for _ in range(5):
            await limiter.acquire(Deadline.after(10.0, clock))
        clock.now = 0.3
        await limiter.acquire(Deadline.after(0.5, clock))

    with pytest.raises(ApiTimeoutError, match="rate limit"):
        asyncio.run(scenario())

    assert recorded_sleeps == []


def test_client_refuses_a_request_its_rate_limit_cannot_start_in_time(connect):
    handler = ScriptedHandler(reply(200, COMPLETED))
    driver = connect(handler, max_requests_per_second=1, deadline=0.3)

    driver.get("t-1")
    started = time.monotonic()
    with pytest.raises(ApiTimeoutError):
        driver.get("t-1")

    assert handler.count == 1
    assert time.monotonic() - started < 0.25


# --- invalid requests are never sent ------------------------------------------------


@pytest.mark.parametrize("transfer_id", ["", "   ", None, 42])
def test_get_with_an_invalid_id_sends_nothing(connect, transfer_id):
    handler = ScriptedHandler(reply(200, COMPLETED))
    driver = connect(handler)

    with pytest.raises(InvalidRequestError):
        driver.get(transfer_id)

    assert handler.count == 0


@pytest.mark.parametrize("request_object", [{"id": "t-1"}, "t-1", None])
def test_create_with_something_that_is_not_a_request_sends_nothing(connect, request_object):
    handler = ScriptedHandler(reply(200, transfer_body()))
    driver = connect(handler)

    with pytest.raises(InvalidRequestError):
        driver.create(request_object)

    assert handler.count == 0


# --- lifecycle ----------------------------------------------------------------------


def test_clients_work_as_context_managers():
    handler = ScriptedHandler(reply(200, COMPLETED))
    settings = make_settings()

    with GenAgentClient(settings, transport=httpx.MockTransport(handler)) as client:
        assert client.get_transfer("t-1").status is TransferStatus.COMPLETED

    async def use_async():
        async with AsyncGenAgentClient(settings, transport=httpx.MockTransport(handler)) as aclient:
            return await aclient.get_transfer("t-1")

    assert asyncio.run(use_async()).status is TransferStatus.COMPLETED
    assert handler.count == 2


def test_a_deadline_already_spent_sends_nothing(connect):
    handler = ScriptedHandler(reply(200, transfer_body()))
    driver = connect(handler)
    with pytest.raises(ApiTimeoutError):
        driver.get("t-1", deadline=0)
    assert handler.count == 0
