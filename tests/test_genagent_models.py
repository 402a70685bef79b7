"""CallTransfer.from_json against every example body in the ASAPP documents."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from adapter.genagent import (
    CallTransfer,
    InviteAuthentication,
    MalformedResponseError,
    PhoneNumber,
    ReturnTransferType,
    TransferKind,
    TransferStatus,
    TransferType,
)

# --- example bodies, copied from the reference documents ----------------------------

# PSTN guide, step 1: the create response.
PSTN_CREATE_RESPONSE: dict[str, Any] = {
    "id": "[Your Transfer Id]",
    "externalConversationId": "[Your Conversation Id]",
    "status": "ACTIVE",
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

# PSTN guide, step 4: the GET response once completed.
PSTN_GET_COMPLETED: dict[str, Any] = {
    "id": "[Your Transfer Id]",
    "externalConversationId": "[Your Conversation Id]",
    "status": "COMPLETED",
    "createdAt": "2025-06-19T13:38:40Z",
    "callReceivedAt": "2025-06-19T13:38:45Z",
    "completedAt": "2025-06-19T13:39:12Z",
    "inputContext": {
        "taskName": "AsappDemo",
        "inputVariables": {"accountNumber": "3434", "name": "sample_name"},
    },
    "type": "PHONE_NUMBER",
    "outputContext": {
        "transferType": "SYSTEM",
        "currentTaskName": "currentTaskName",
        "referenceVariables": {"reference_variable_1": "4343"},
        "transferVariables": {"transfer_variable_": "4343"},
    },
    "phoneNumber": {
        "transferNumber": "+19991234",
        "country": "US",
        "expireAt": "2025-06-19T13:39:40Z",
    },
}

# get-call-transfer OpenAPI: the response example (lower-case status, expiresAt).
OPENAPI_EXAMPLE: dict[str, Any] = {
    "id": "0867617078-0032318833-2221801472-0002236962",
    "externalConversationId": "0867617078-0032318833-2221801472-0002236962",
    "status": "completed",
    "createdAt": "2024-06-01T12:34:56Z",
    "callReceivedAt": "2024-06-01T12:35:00Z",
    "completedAt": "2024-06-01T12:38:56Z",
    "inputContext": {
        "taskName": "Welcome",
        "inputVariables": {"email": "example@gmail.com", "name": "name"},
    },
    "outputContext": {
        "transferType": "SYSTEM",
        "currentTaskName": "Welcome",
        "referenceVariables": {
            "reference_variable_1": "reference_value_1",
            "reference_variable_2": "reference_value_2",
        },
        "transferVariables": {
            "transfer_variable_1": "transfer_value_1",
            "transfer_variable_2": "transfer_value_2",
        },
    },
    "type": "PHONE_NUMBER",
    "phoneNumber": {
        "transferNumber": "+19995550199",
        "country": "US",
        "expiresAt": "2024-06-01T12:35:56Z",
    },
}

# get-call-transfer OpenAPI: the inputContext schema example (``variables``).
OPENAPI_INPUT_CONTEXT_EXAMPLE: dict[str, Any] = {
    "taskName": "welcome",
    "variables": {"email": "example@gmail.com", "name": "name"},
}

# get-call-transfer OpenAPI: the sip schema example (``returnUri``).
OPENAPI_SIP_EXAMPLE: dict[str, Any] = {
    "returnTransferType": "REFER",
    "returnUri": "sip:transfer@your-company.com:5060",
}

SIP_RETURN_URI = "sip:user@customer-sbc.example.com;User-to-User=UUI-12345"

# SIP API guide, step 1: the create response (``returnURI``).
SIP_CREATE_RESPONSE: dict[str, Any] = {
    "id": "[Your Transfer Id]",
    "externalConversationId": "[Your Conversation Id]",
    "status": "ACTIVE",
    "type": "SIP",
    "inputContext": {
        "taskName": "call_routing",
        "inputVariables": {"accountNumber": "3434", "name": "John Doe"},
    },
    "sip": {"returnURI": SIP_RETURN_URI},
    "createdAt": "2025-01-15T13:06:00Z",
}

# SIP API guide, step 3: the GET response once completed.
SIP_GET_COMPLETED: dict[str, Any] = {
    "id": "[Your Transfer Id]",
    "externalConversationId": "[Your Conversation Id]",
    "status": "COMPLETED",
    "createdAt": "2025-01-15T13:06:00Z",
    "callReceivedAt": "2025-01-15T13:06:30Z",
    "completedAt": "2025-01-15T13:09:45Z",
    "inputContext": {
        "taskName": "call_routing",
        "inputVariables": {"accountNumber": "3434", "name": "John Doe"},
    },
    "type": "SIP",
    "outputContext": {
        "transferType": "SYSTEM",
        "currentTaskName": "AccountInquiry",
        "referenceVariables": {
            "account_balance": "1250.00",
            "last_payment_date": "2025-01-10",
        },
        "transferVariables": {"next_action": "schedule_callback", "priority": "high"},
    },
    "sip": {"returnURI": SIP_RETURN_URI},
}


def body(example: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of ``example`` with top-level ``changes``."""
    data = copy.deepcopy(example)
    data.update(changes)
    return data


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- documented examples ------------------------------------------------------------


def test_pstn_create_response():
    transfer = CallTransfer.from_json(body(PSTN_CREATE_RESPONSE))

    assert transfer.id == "[Your Transfer Id]"
    assert transfer.external_conversation_id == "[Your Conversation Id]"
    assert transfer.status is TransferStatus.ACTIVE
    assert transfer.type is TransferKind.PHONE_NUMBER
    assert transfer.input_context is not None
    assert transfer.input_context.task_name == "AsappDemo"
    assert transfer.input_context.input_variables == {
        "accountNumber": "3434",
        "name": "sample_name",
    }
    assert transfer.phone_number is not None
    assert transfer.phone_number.transfer_number == "+19991234"
    assert transfer.phone_number.country == "US"
    assert transfer.phone_number.expire_at == utc(2025, 6, 19, 13, 39, 40)
    assert transfer.transfer_number == "+19991234"
    assert transfer.expire_at == utc(2025, 6, 19, 13, 39, 40)
    assert transfer.output_context is None
    assert transfer.sip is None
    assert transfer.created_at is None
    assert transfer.extra == {}


def test_pstn_get_completed_with_output_context():
    transfer = CallTransfer.from_json(body(PSTN_GET_COMPLETED))

    assert transfer.status is TransferStatus.COMPLETED
    assert transfer.type is TransferKind.PHONE_NUMBER
    assert transfer.created_at == utc(2025, 6, 19, 13, 38, 40)
    assert transfer.call_received_at == utc(2025, 6, 19, 13, 38, 45)
    assert transfer.completed_at == utc(2025, 6, 19, 13, 39, 12)
    out = transfer.output_context
    assert out is not None
    assert out.transfer_type is TransferType.SYSTEM
    assert out.current_task_name == "currentTaskName"
    assert out.reference_variables == {"reference_variable_1": "4343"}
    assert out.transfer_variables == {"transfer_variable_": "4343"}
    assert out.extra == {}
    assert transfer.transfer_number == "+19991234"


def test_openapi_example_lower_case_status_and_expires_at():
    transfer = CallTransfer.from_json(body(OPENAPI_EXAMPLE))

    assert transfer.status is TransferStatus.COMPLETED
    assert transfer.id == "0867617078-0032318833-2221801472-0002236962"
    assert transfer.created_at == utc(2024, 6, 1, 12, 34, 56)
    assert transfer.call_received_at == utc(2024, 6, 1, 12, 35, 0)
    assert transfer.completed_at == utc(2024, 6, 1, 12, 38, 56)
    assert transfer.phone_number is not None
    assert transfer.phone_number.transfer_number == "+19995550199"
    assert transfer.expire_at == utc(2024, 6, 1, 12, 35, 56)
    # the alternative spelling is understood, not left over as an unknown field
    assert transfer.phone_number.extra == {}
    assert transfer.output_context is not None
    assert transfer.output_context.transfer_type is TransferType.SYSTEM
    assert transfer.output_context.reference_variables == {
        "reference_variable_1": "reference_value_1",
        "reference_variable_2": "reference_value_2",
    }
    assert transfer.output_context.transfer_variables == {
        "transfer_variable_1": "transfer_value_1",
        "transfer_variable_2": "transfer_value_2",
    }


def test_openapi_input_context_example_with_variables():
    data = body(OPENAPI_EXAMPLE, inputContext=copy.deepcopy(OPENAPI_INPUT_CONTEXT_EXAMPLE))
    transfer = CallTransfer.from_json(data)

    assert transfer.input_context is not None
    assert transfer.input_context.task_name == "welcome"
    assert transfer.input_context.input_variables == {
        "email": "example@gmail.com",
        "name": "name",
    }
    assert transfer.input_context.extra == {}


def test_sip_create_response_with_return_URI():
    transfer = CallTransfer.from_json(body(SIP_CREATE_RESPONSE))

    assert transfer.status is TransferStatus.ACTIVE
    assert transfer.type is TransferKind.SIP
    assert transfer.created_at == utc(2025, 1, 15, 13, 6, 0)
    assert transfer.sip is not None
    assert transfer.sip.return_uri == SIP_RETURN_URI
    assert transfer.sip.return_transfer_type is None
    assert transfer.sip.return_invite_authentication is None
    assert transfer.sip.extra == {}
    assert transfer.phone_number is None
    assert transfer.transfer_number is None
    assert transfer.expire_at is None
    assert transfer.input_context is not None
    assert transfer.input_context.input_variables == {"accountNumber": "3434", "name": "John Doe"}


def test_sip_get_completed():
    transfer = CallTransfer.from_json(body(SIP_GET_COMPLETED))

    assert transfer.status is TransferStatus.COMPLETED
    assert transfer.type is TransferKind.SIP
    assert transfer.completed_at == utc(2025, 1, 15, 13, 9, 45)
    assert transfer.sip is not None
    assert transfer.sip.return_uri == SIP_RETURN_URI
    assert transfer.output_context is not None
    assert transfer.output_context.current_task_name == "AccountInquiry"
    assert transfer.output_context.transfer_variables == {
        "next_action": "schedule_callback",
        "priority": "high",
    }


def test_openapi_sip_example_with_return_Uri():
    data = body(SIP_CREATE_RESPONSE, sip=copy.deepcopy(OPENAPI_SIP_EXAMPLE))
    transfer = CallTransfer.from_json(data)

    assert transfer.sip is not None
    assert transfer.sip.return_uri == "sip:transfer@your-company.com:5060"
    assert transfer.sip.return_transfer_type is ReturnTransferType.REFER
    assert transfer.sip.extra == {}


def test_sip_invite_authentication_is_parsed():
    sip = {
        "returnURI": SIP_RETURN_URI,
        "returnTransferType": "INVITE",
        "returnInviteAuthentication": {"username": "your_username", "password": "your_password"},
    }
    transfer = CallTransfer.from_json(body(SIP_CREATE_RESPONSE, sip=sip))

    assert transfer.sip is not None
    assert transfer.sip.return_transfer_type is ReturnTransferType.INVITE
    assert transfer.sip.return_invite_authentication == InviteAuthentication(
        username="your_username", password="your_password"
    )


# --- timestamps ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-06-19T13:39:40Z", utc(2025, 6, 19, 13, 39, 40)),
        ("2025-06-19T13:39:40+00:00", utc(2025, 6, 19, 13, 39, 40)),
        ("2025-06-19T13:39:40", utc(2025, 6, 19, 13, 39, 40)),
        ("2025-06-19T13:39:40.250Z", datetime(2025, 6, 19, 13, 39, 40, 250000, tzinfo=UTC)),
        ("2025-06-19T15:39:40+02:00", utc(2025, 6, 19, 13, 39, 40)),
    ],
)
def test_timestamps_are_timezone_aware(text, expected):
    data = body(PSTN_GET_COMPLETED, createdAt=text, callReceivedAt=text, completedAt=text)
    data["phoneNumber"]["expireAt"] = text
    transfer = CallTransfer.from_json(data)

    for value in (
        transfer.created_at,
        transfer.call_received_at,
        transfer.completed_at,
        transfer.expire_at,
    ):
        assert value is not None
        assert value.tzinfo is not None
        assert value.utcoffset() is not None
        assert value == expected


def test_timestamp_without_offset_is_utc_not_local():
    transfer = CallTransfer.from_json(body(PSTN_GET_COMPLETED, createdAt="2025-06-19T13:38:40"))

    assert transfer.created_at is not None
    assert transfer.created_at.utcoffset() == timedelta(0)


def test_timestamp_keeps_its_offset():
    transfer = CallTransfer.from_json(
        body(PSTN_GET_COMPLETED, createdAt="2025-06-19T15:38:40+02:00")
    )

    assert transfer.created_at is not None
    assert transfer.created_at.utcoffset() == timedelta(hours=2)
    assert transfer.created_at == datetime(
        2025, 6, 19, 15, 38, 40, tzinfo=timezone(timedelta(hours=2))
    )


@pytest.mark.parametrize("value", ["yesterday", "2025-13-40T00:00:00Z", 1718800000, True])
def test_bad_timestamp_is_malformed_and_named(value):
    with pytest.raises(MalformedResponseError, match="createdAt"):
        CallTransfer.from_json(body(PSTN_GET_COMPLETED, createdAt=value))


def test_bad_expire_at_is_named_with_its_section():
    data = body(PSTN_CREATE_RESPONSE)
    data["phoneNumber"]["expireAt"] = "soon"
    with pytest.raises(MalformedResponseError, match=r"phoneNumber\.expireAt"):
        CallTransfer.from_json(data)


# --- enums --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ACTIVE", TransferStatus.ACTIVE),
        ("active", TransferStatus.ACTIVE),
        ("Ongoing", TransferStatus.ONGOING),
        ("completed", TransferStatus.COMPLETED),
        ("eXpIrEd", TransferStatus.EXPIRED),
    ],
)
def test_status_in_any_case(raw, expected):
    transfer = CallTransfer.from_json(body(PSTN_CREATE_RESPONSE, status=raw))

    assert transfer.status is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("PHONE_NUMBER", TransferKind.PHONE_NUMBER),
        ("phone_number", TransferKind.PHONE_NUMBER),
        ("sip", TransferKind.SIP),
        ("Sip", TransferKind.SIP),
    ],
)
def test_type_in_any_case(raw, expected):
    transfer = CallTransfer.from_json(body(PSTN_CREATE_RESPONSE, type=raw))

    assert transfer.type is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("AGENT", TransferType.AGENT),
        ("agent", TransferType.AGENT),
        ("system", TransferType.SYSTEM),
        ("caller_disconnect", TransferType.CALLER_DISCONNECT),
        ("Caller_Disconnect", TransferType.CALLER_DISCONNECT),
    ],
)
def test_output_transfer_type_in_any_case(raw, expected):
    data = body(PSTN_GET_COMPLETED)
    data["outputContext"]["transferType"] = raw
    transfer = CallTransfer.from_json(data)

    assert transfer.output_context is not None
    assert transfer.output_context.transfer_type is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("bye", ReturnTransferType.BYE), ("Refer", ReturnTransferType.REFER)],
)
def test_return_transfer_type_in_any_case(raw, expected):
    sip = {"returnURI": SIP_RETURN_URI, "returnTransferType": raw}
    transfer = CallTransfer.from_json(body(SIP_CREATE_RESPONSE, sip=sip))

    assert transfer.sip is not None
    assert transfer.sip.return_transfer_type is expected


def test_unknown_enum_values_are_kept_upper_case():
    data = body(SIP_GET_COMPLETED, status="paused", type="webrtc")
    data["outputContext"]["transferType"] = "bot_handoff"
    data["sip"]["returnTransferType"] = "push"
    transfer = CallTransfer.from_json(data)

    assert transfer.status == "PAUSED"
    assert not isinstance(transfer.status, TransferStatus)
    assert transfer.type == "WEBRTC"
    assert not isinstance(transfer.type, TransferKind)
    assert transfer.output_context is not None
    assert transfer.output_context.transfer_type == "BOT_HANDOFF"
    assert not isinstance(transfer.output_context.transfer_type, TransferType)
    assert transfer.sip is not None
    assert transfer.sip.return_transfer_type == "PUSH"
    assert not isinstance(transfer.sip.return_transfer_type, ReturnTransferType)


# --- unknown fields -----------------------------------------------------------------


def test_unknown_fields_land_in_extra_at_each_level():
    data = body(PSTN_GET_COMPLETED, region="us-east", flags={"beta": True})
    data["inputContext"]["locale"] = "en-US"
    data["outputContext"]["sentiment"] = 0.7
    data["phoneNumber"]["carrier"] = "acme"
    transfer = CallTransfer.from_json(data)

    assert transfer.extra == {"region": "us-east", "flags": {"beta": True}}
    assert transfer.input_context is not None
    assert transfer.input_context.extra == {"locale": "en-US"}
    assert transfer.output_context is not None
    assert transfer.output_context.extra == {"sentiment": 0.7}
    assert transfer.phone_number is not None
    assert transfer.phone_number.extra == {"carrier": "acme"}


def test_unknown_sip_fields_land_in_sip_extra():
    sip = {"returnURI": SIP_RETURN_URI, "codec": "PCMU"}
    transfer = CallTransfer.from_json(body(SIP_CREATE_RESPONSE, sip=sip))

    assert transfer.sip is not None
    assert transfer.sip.extra == {"codec": "PCMU"}
    assert transfer.extra == {}


# --- required fields and shapes -----------------------------------------------------


@pytest.mark.parametrize("field", ["id", "externalConversationId", "status", "type"])
def test_missing_required_field_is_named(field):
    data = body(PSTN_CREATE_RESPONSE)
    del data[field]
    with pytest.raises(MalformedResponseError) as caught:
        CallTransfer.from_json(data)

    assert re.search(rf"\b{field}\b", str(caught.value))
    assert "missing" in str(caught.value)


@pytest.mark.parametrize("field", ["id", "externalConversationId", "status", "type"])
@pytest.mark.parametrize("value", [None, "", "   "])
def test_null_or_empty_required_field_is_named(field, value):
    data = body(PSTN_CREATE_RESPONSE, **{field: value})
    with pytest.raises(MalformedResponseError, match=rf"\b{field}\b"):
        CallTransfer.from_json(data)


@pytest.mark.parametrize("field", ["id", "externalConversationId", "status", "type"])
def test_non_string_required_field_is_named(field):
    data = body(PSTN_CREATE_RESPONSE, **{field: 12345})
    with pytest.raises(MalformedResponseError, match=rf"\b{field}\b"):
        CallTransfer.from_json(data)


@pytest.mark.parametrize("value", [None, [], [PSTN_CREATE_RESPONSE], "ACTIVE", 42, True, b"{}"])
def test_non_object_body_is_rejected(value):
    with pytest.raises(MalformedResponseError, match="object"):
        CallTransfer.from_json(value)


@pytest.mark.parametrize("section", ["inputContext", "outputContext", "phoneNumber", "sip"])
def test_non_object_section_is_rejected_and_named(section):
    data = body(PSTN_CREATE_RESPONSE, **{section: ["not", "an", "object"]})
    with pytest.raises(MalformedResponseError, match=section):
        CallTransfer.from_json(data)


def test_malformed_response_error_is_a_genagent_error_not_value_error():
    from adapter.genagent import GenAgentError

    with pytest.raises(MalformedResponseError) as caught:
        CallTransfer.from_json({})

    assert isinstance(caught.value, GenAgentError)
    assert not isinstance(caught.value, ValueError)


# --- variables ----------------------------------------------------------------------


NON_STRING_VARIABLES: dict[str, Any] = {
    "int": 3434,
    "float": 12.5,
    "true": True,
    "false": False,
    "null": None,
    "nested": {"b": 2, "a": 1},
    "list": [1, "two"],
    "text": "plain",
}
STRINGIFIED: dict[str, str] = {
    "int": "3434",
    "float": "12.5",
    "true": "true",
    "false": "false",
    "null": "",
    "nested": '{"a":1,"b":2}',
    "list": '[1,"two"]',
    "text": "plain",
}


def test_non_string_variable_values_are_stringified():
    data = body(PSTN_GET_COMPLETED)
    data["inputContext"]["inputVariables"] = dict(NON_STRING_VARIABLES)
    data["outputContext"]["referenceVariables"] = dict(NON_STRING_VARIABLES)
    data["outputContext"]["transferVariables"] = dict(NON_STRING_VARIABLES)
    transfer = CallTransfer.from_json(data)

    assert transfer.input_context is not None
    assert transfer.output_context is not None
    assert transfer.input_context.input_variables == STRINGIFIED
    assert transfer.output_context.reference_variables == STRINGIFIED
    assert transfer.output_context.transfer_variables == STRINGIFIED
    for value in transfer.input_context.input_variables.values():
        assert isinstance(value, str)


def test_variables_that_are_not_an_object_are_rejected():
    data = body(PSTN_GET_COMPLETED)
    data["outputContext"]["transferVariables"] = ["a", "b"]
    with pytest.raises(MalformedResponseError, match="transferVariables"):
        CallTransfer.from_json(data)


# --- privacy of reprs ---------------------------------------------------------------


@pytest.mark.parametrize("example", [PSTN_CREATE_RESPONSE, PSTN_GET_COMPLETED, OPENAPI_EXAMPLE])
def test_repr_never_shows_the_full_transfer_number(example):
    transfer = CallTransfer.from_json(body(example))
    number = transfer.transfer_number
    assert number is not None

    for text in (repr(transfer), str(transfer), repr(transfer.phone_number)):
        assert number not in text
        assert number.lstrip("+") not in text
        assert "PhoneNumber(" in text or "CallTransfer(" in text


def test_phone_number_repr_masks_short_numbers_too():
    for number in ("+19991234", "12345", "1234", "+1"):
        text = repr(PhoneNumber(transfer_number=number, country="US"))
        assert number not in text
        assert "***" in text


def test_invite_authentication_repr_hides_the_password():
    auth = InviteAuthentication(username="your_username", password="hunter2-pass")

    assert "hunter2-pass" not in repr(auth)
    assert "hunter2-pass" not in str(auth)
    assert "your_username" in repr(auth)


def test_call_transfer_repr_hides_the_invite_password():
    sip = {
        "returnURI": SIP_RETURN_URI,
        "returnTransferType": "INVITE",
        "returnInviteAuthentication": {"username": "your_username", "password": "hunter2-pass"},
    }
    transfer = CallTransfer.from_json(body(SIP_CREATE_RESPONSE, sip=sip))

    assert "hunter2-pass" not in repr(transfer)
    assert "hunter2-pass" not in repr(transfer.sip)


def test_null_input_variables_fall_back_to_variables():
    data = body(
        PSTN_CREATE_RESPONSE,
        inputContext={"taskName": "t", "inputVariables": None, "variables": {"a": "1"}},
    )
    transfer = CallTransfer.from_json(data)
    assert transfer.input_context is not None
    assert transfer.input_context.input_variables == {"a": "1"}
