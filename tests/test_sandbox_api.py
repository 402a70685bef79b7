"""The sandbox as a real HTTP server: what any client (curl included) sees."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.conftest import AUTH

PATH = "/generativeagent/v1/call-transfers"


def phone_body(transfer_id: str = "t-1", conversation: str = "conv-1", **extra: Any) -> dict:
    body: dict[str, Any] = {
        "id": transfer_id,
        "externalConversationId": conversation,
        "type": "PHONE_NUMBER",
        "phoneNumber": {"country": "US"},
        "inputContext": {"taskName": "call_routing", "inputVariables": {"accountNumber": "3434"}},
    }
    body.update(extra)
    return body


def create(raw: httpx.Client, transfer_id: str = "t-1", conversation: str = "conv-1") -> dict:
    response = raw.post(PATH, json=phone_body(transfer_id, conversation), headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


def assert_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["requestId"]
    assert error["code"].startswith(str(status))
    assert error["message"]
    return error


def test_create_then_get_round_trip(raw: httpx.Client) -> None:
    created = create(raw)
    assert created["status"] == "ACTIVE"
    assert created["type"] == "PHONE_NUMBER"
    assert created["phoneNumber"]["transferNumber"].startswith("+1999555")
    assert created["phoneNumber"]["country"] == "US"
    assert created["inputContext"]["inputVariables"] == {"accountNumber": "3434"}
    got = raw.get(f"{PATH}/t-1", headers=AUTH).json()
    assert got == created


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"asapp-api-id": "sandbox-id"},
        {"asapp-api-secret": "x"},
        {**AUTH, "asapp-api-secret": "no"},
    ],
)
def test_requests_without_valid_credentials_get_401(raw: httpx.Client, headers: dict) -> None:
    assert_error(raw.post(PATH, json=phone_body(), headers=headers), 401)
    assert_error(raw.get(f"{PATH}/t-1", headers=headers), 401)
    # Nothing was created by the rejected POST.
    assert raw.get("/sandbox/transfers").json()["transfers"] == []


def test_malformed_json_is_400(raw: httpx.Client) -> None:
    error = assert_error(
        raw.post(PATH, content=b'{"id": ', headers={**AUTH, "content-type": "application/json"}),
        400,
    )
    assert "JSON" in error["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"externalConversationId": "c", "type": "PHONE_NUMBER"}, "id"),
        (phone_body(externalConversationId=""), "externalConversationId"),
        (phone_body(type="FAX"), "type"),
        (phone_body(phoneNumber={"country": "ZZ"}), "country"),
        (phone_body(phoneNumber=None), "phoneNumber"),
        (phone_body(inputContext={"inputVariables": {"n": 3}}), "inputVariables"),
        (
            {
                "id": "s",
                "externalConversationId": "c",
                "type": "SIP",
                "sip": {"returnURI": "sip:" + "a" * 1021, "returnTransferType": "REFER"},
            },
            "returnURI",
        ),
        ([1, 2], "object"),
    ],
)
def test_invalid_bodies_are_422_naming_the_field(raw: httpx.Client, body: Any, field: str) -> None:
    error = assert_error(raw.post(PATH, json=body, headers=AUTH), 422)
    assert field in error["message"]


def test_oversized_body_is_413(raw: httpx.Client) -> None:
    body = phone_body(inputContext={"inputVariables": {"big": "x" * 70_000}})
    assert_error(raw.post(PATH, json=body, headers=AUTH), 413)


def test_duplicate_id_is_409_and_keeps_the_first(raw: httpx.Client) -> None:
    first = create(raw)
    second = raw.post(PATH, json=phone_body(conversation="other"), headers=AUTH)
    assert_error(second, 409)
    assert raw.get(f"{PATH}/t-1", headers=AUTH).json() == first


def test_unknown_id_is_404(raw: httpx.Client) -> None:
    assert_error(raw.get(f"{PATH}/nope", headers=AUTH), 404)


def test_unknown_route_answers_the_documented_error_body(raw: httpx.Client) -> None:
    assert_error(raw.get("/generativeagent/v1/elsewhere", headers=AUTH), 404)


def test_sip_transfer_echoes_return_uri(raw: httpx.Client) -> None:
    body = {
        "id": "sip-1",
        "externalConversationId": "conv-sip",
        "type": "SIP",
        "sip": {
            "returnUri": "sip:user@sbc.example.com;User-to-User=UUI-1",
            "returnTransferType": "refer",
        },
    }
    created = raw.post(PATH, json=body, headers=AUTH).json()
    assert created["status"] == "ACTIVE"
    assert created["sip"]["returnURI"] == "sip:user@sbc.example.com;User-to-User=UUI-1"
    assert created["sip"]["returnTransferType"] == "REFER"
    assert "phoneNumber" not in created


def test_numbers_are_unique_and_released_on_connect(make_sandbox: Any) -> None:
    server = make_sandbox(pool_size=2)
    with httpx.Client(base_url=server.url) as raw:
        a = create(raw, "a", "ca")["phoneNumber"]["transferNumber"]
        b = create(raw, "b", "cb")["phoneNumber"]["transferNumber"]
        assert a != b
        exhausted = raw.post(PATH, json=phone_body("c", "cc"), headers=AUTH)
        assert_error(exhausted, 503)
        connected = raw.post("/sandbox/calls", json={"transferNumber": a}).json()
        assert connected["id"] == "a"
        assert connected["status"] == "ONGOING"
        assert connected["callReceivedAt"]
        # The released number goes to the next caller.
        assert create(raw, "c", "cc")["phoneNumber"]["transferNumber"] == a
        # Dialing a number that was handed on reaches the new transfer, never the old one.
        again = raw.post("/sandbox/calls", json={"transferNumber": a}).json()
        assert again["id"] == "c"


def test_transfers_expire_at_expire_at_and_free_their_number(make_sandbox: Any) -> None:
    server = make_sandbox(expire_seconds=0.3, pool_size=1)
    with httpx.Client(base_url=server.url) as raw:
        created = create(raw, "x", "cx")
        number = created["phoneNumber"]["transferNumber"]
        time.sleep(0.45)
        got = raw.get(f"{PATH}/x", headers=AUTH).json()
        assert got["status"] == "EXPIRED"
        late = raw.post("/sandbox/calls", json={"transferNumber": number})
        assert_error(late, 404)
        assert create(raw, "y", "cy")["phoneNumber"]["transferNumber"] == number


def test_complete_sets_output_context(raw: httpx.Client) -> None:
    number = create(raw)["phoneNumber"]["transferNumber"]
    raw.post("/sandbox/calls", json={"transferNumber": number})
    output = {
        "transferType": "AGENT",
        "currentTaskName": "billing",
        "referenceVariables": {"account": "42"},
        "transferVariables": {"reason": "dispute"},
    }
    done = raw.post("/sandbox/transfers/t-1/complete", json=output).json()
    assert done["status"] == "COMPLETED"
    assert done["completedAt"]
    got = raw.get(f"{PATH}/t-1", headers=AUTH).json()
    assert got["outputContext"] == output


def test_caller_hangup_completes_with_caller_disconnect(raw: httpx.Client) -> None:
    number = create(raw)["phoneNumber"]["transferNumber"]
    raw.post("/sandbox/calls", json={"transferNumber": number})
    raw.post("/sandbox/transfers/t-1/caller-hangup")
    got = raw.get(f"{PATH}/t-1", headers=AUTH).json()
    assert got["status"] == "COMPLETED"
    assert got["outputContext"]["transferType"] == "CALLER_DISCONNECT"


def test_control_endpoints_refuse_the_wrong_state(raw: httpx.Client) -> None:
    create(raw)
    assert_error(raw.post("/sandbox/transfers/t-1/complete", json={"transferType": "AGENT"}), 409)
    raw.post("/sandbox/transfers/t-1/expire")
    assert raw.get(f"{PATH}/t-1", headers=AUTH).json()["status"] == "EXPIRED"
    assert_error(raw.post("/sandbox/transfers/t-1/expire"), 409)
    assert_error(raw.post("/sandbox/transfers/none/complete", json={"transferType": "AGENT"}), 404)
    assert_error(raw.post("/sandbox/calls", json={}), 400)


def test_reusing_the_conversation_id_resumes_it(raw: httpx.Client) -> None:
    number = create(raw, "leg-1", "conv-r")["phoneNumber"]["transferNumber"]
    raw.post("/sandbox/calls", json={"transferNumber": number})
    raw.post(
        "/sandbox/transfers/leg-1/complete",
        json={"transferType": "CALLER_DISCONNECT", "currentTaskName": "collect_address"},
    )
    second = raw.post(
        PATH,
        json={
            "id": "leg-2",
            "externalConversationId": "conv-r",
            "type": "PHONE_NUMBER",
            "phoneNumber": {"country": "US"},
        },
        headers=AUTH,
    ).json()
    raw.post("/sandbox/calls", json={"transferNumber": second["phoneNumber"]["transferNumber"]})
    done = raw.post("/sandbox/transfers/leg-2/complete", json={"transferType": "SYSTEM"}).json()
    # The resumed leg picks up the task where the first leg left off.
    assert done["outputContext"]["currentTaskName"] == "collect_address"
    conversation = raw.get("/sandbox/conversations/conv-r").json()
    assert conversation["resumed"] is True
    assert [leg["id"] for leg in conversation["legs"]] == ["leg-1", "leg-2"]


def test_injected_failures_hit_the_next_n_requests_only(raw: httpx.Client) -> None:
    raw.post("/sandbox/faults", json={"fail": {"status": 429, "count": 2, "retryAfter": 1}})
    for _ in range(2):
        response = raw.post(PATH, json=phone_body(), headers=AUTH)
        assert_error(response, 429)
        assert response.headers["retry-after"] == "1"
    assert raw.get("/sandbox/transfers").json()["transfers"] == []
    create(raw)


def test_failures_can_target_get_only(raw: httpx.Client) -> None:
    raw.post("/sandbox/faults", json={"fail": {"status": 503, "count": 1, "on": "get"}})
    create(raw)
    assert_error(raw.get(f"{PATH}/t-1", headers=AUTH), 503)
    assert raw.get(f"{PATH}/t-1", headers=AUTH).status_code == 200


def test_malformed_json_fault(raw: httpx.Client) -> None:
    create(raw)
    raw.post("/sandbox/faults", json={"malformed": {"count": 1}})
    response = raw.get(f"{PATH}/t-1", headers=AUTH)
    assert response.status_code == 200
    with pytest.raises(ValueError, match=r"Unterminated|Expecting"):
        response.json()
    assert raw.get(f"{PATH}/t-1", headers=AUTH).json()["id"] == "t-1"


def test_latency_fault_delays_answers(raw: httpx.Client) -> None:
    raw.post("/sandbox/faults", json={"latencyMs": 300})
    with pytest.raises(httpx.ReadTimeout):
        raw.post(PATH, json=phone_body(), headers=AUTH, timeout=0.1)
    raw.delete("/sandbox/faults")
    # The slow request still took effect: a retry meets 409.
    assert_error(raw.post(PATH, json=phone_body(), headers=AUTH), 409)


def test_completion_lag_keeps_get_ongoing_for_a_while(raw: httpx.Client) -> None:
    raw.post("/sandbox/faults", json={"completionLagMs": 300})
    number = create(raw)["phoneNumber"]["transferNumber"]
    raw.post("/sandbox/calls", json={"transferNumber": number})
    raw.post("/sandbox/transfers/t-1/complete", json={"transferType": "AGENT"})
    lagging = raw.get(f"{PATH}/t-1", headers=AUTH).json()
    assert lagging["status"] == "ONGOING"
    assert "outputContext" not in lagging
    time.sleep(0.4)
    done = raw.get(f"{PATH}/t-1", headers=AUTH).json()
    assert done["status"] == "COMPLETED"
    assert done["outputContext"]["transferType"] == "AGENT"


@pytest.mark.parametrize(
    "spec",
    [
        [1],
        {"fail": {"status": 99}},
        {"fail": {"status": 503, "count": 0}},
        {"latencyMs": -1},
        {"fail": {"status": 503, "on": "delete"}},
    ],
)
def test_bad_fault_specs_are_rejected(raw: httpx.Client, spec: Any) -> None:
    assert_error(raw.post("/sandbox/faults", json=spec), 400)
    assert raw.get("/sandbox/faults").json()["fail"] == []


def test_reset_forgets_everything(raw: httpx.Client) -> None:
    create(raw)
    raw.post("/sandbox/faults", json={"latencyMs": 10})
    raw.post("/sandbox/reset")
    snapshot = raw.get("/sandbox/transfers").json()
    assert snapshot["transfers"] == []
    assert snapshot["freeNumbers"] == 100
    assert snapshot["faults"]["latencyMs"] == 0


def test_healthz(raw: httpx.Client) -> None:
    assert raw.get("/healthz").json() == {"status": "ok"}
