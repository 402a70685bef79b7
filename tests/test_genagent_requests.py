"""Create-transfer requests: local validation and the JSON body sent to the API."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from adapter.genagent import (
    InvalidRequestError,
    InviteAuthentication,
    PhoneNumberTransferRequest,
    ReturnTransferType,
    SipTransferRequest,
)
from adapter.genagent.requests import request_from_json

SIP_RETURN_URI = "sip:user@customer-sbc.example.com;User-to-User=UUI-12345"
DOC_INPUT_CONTEXT: dict[str, Any] = {
    "taskName": "call_routing",
    "inputVariables": {"accountNumber": "3434", "name": "John Doe"},
}


def phone(**overrides: Any) -> PhoneNumberTransferRequest:
    values: dict[str, Any] = {"id": "t-1", "external_conversation_id": "c-1"}
    values.update(overrides)
    return PhoneNumberTransferRequest(**values)


def sip(**overrides: Any) -> SipTransferRequest:
    values: dict[str, Any] = {"id": "t-1", "external_conversation_id": "c-1"}
    values.update(overrides)
    return SipTransferRequest(**values)


def wire_size(body: dict[str, Any]) -> int:
    """Bytes of the compact JSON body (ASCII content, so encoding choices agree)."""
    return len(json.dumps(body, separators=(",", ":")).encode())


BUILDERS: list[Callable[..., Any]] = [phone, sip]


# --- ids ----------------------------------------------------------------------------


@pytest.mark.parametrize("build", BUILDERS)
@pytest.mark.parametrize("field", ["id", "external_conversation_id"])
@pytest.mark.parametrize("value", ["", " ", "\t \n", None, 42])
def test_empty_or_non_string_ids_are_rejected(build, field, value):
    with pytest.raises(InvalidRequestError) as caught:
        build(**{field: value})

    json_name = "id" if field == "id" else "externalConversationId"
    assert str(caught.value).startswith(json_name)


@pytest.mark.parametrize("build", BUILDERS)
@pytest.mark.parametrize("field", ["id", "external_conversation_id"])
@pytest.mark.parametrize("char", ["\n", "\r", "\x00", "\x1b", "\x7f", "\t"])
def test_control_characters_in_ids_are_rejected(build, field, char):
    with pytest.raises(InvalidRequestError, match="control characters"):
        build(**{field: f"abc{char}def"})


@pytest.mark.parametrize("build", BUILDERS)
@pytest.mark.parametrize("field", ["id", "external_conversation_id"])
def test_ids_longer_than_256_characters_are_rejected(build, field):
    build(**{field: "x" * 256})  # the longest accepted
    with pytest.raises(InvalidRequestError, match="256"):
        build(**{field: "x" * 257})


@pytest.mark.parametrize("build", BUILDERS)
def test_ids_with_spaces_and_slashes_are_allowed(build):
    request = build(id="a/b c", external_conversation_id="conv 1/2")

    assert request.to_json()["id"] == "a/b c"
    assert request.to_json()["externalConversationId"] == "conv 1/2"


# --- task name ----------------------------------------------------------------------


@pytest.mark.parametrize("build", BUILDERS)
@pytest.mark.parametrize("value", ["", "  ", "task\nname", 7])
def test_bad_task_name_is_rejected(build, value):
    with pytest.raises(InvalidRequestError, match=r"inputContext\.taskName"):
        build(task_name=value)


# --- country ------------------------------------------------------------------------


def test_country_defaults_to_us():
    assert phone().country == "US"
    assert phone().to_json()["phoneNumber"] == {"country": "US"}


@pytest.mark.parametrize(
    ("given", "stored"), [("US", "US"), ("us", "US"), ("gb", "GB"), ("Ca", "CA")]
)
def test_country_is_normalised_to_upper_case(given, stored):
    request = phone(country=given)

    assert request.country == stored
    assert request.to_json()["phoneNumber"]["country"] == stored


@pytest.mark.parametrize("country", ["XX", "USA", "", " ", "U", None, 1])
def test_bad_country_is_rejected(country):
    with pytest.raises(InvalidRequestError, match=r"phoneNumber\.country"):
        phone(country=country)


# --- input variables ----------------------------------------------------------------


@pytest.mark.parametrize("build", BUILDERS)
@pytest.mark.parametrize("value", [987654321, 98765.4321, True, None, ["98765"], {"pin": "98765"}])
def test_non_string_input_variable_values_are_rejected_without_echoing_them(build, value):
    with pytest.raises(InvalidRequestError) as caught:
        build(input_variables={"name": "ok", "accountPin": value})

    message = str(caught.value)
    assert "accountPin" in message
    assert "inputContext.inputVariables" in message
    assert "98765" not in message
    if value is not None and not isinstance(value, bool):
        assert repr(value) not in message


@pytest.mark.parametrize("build", BUILDERS)
@pytest.mark.parametrize("variables", [["a", "b"], "a=b", {"": "empty key"}, {1: "int key"}])
def test_bad_input_variables_container_or_keys_are_rejected(build, variables):
    with pytest.raises(InvalidRequestError, match=r"inputContext\.inputVariables"):
        build(input_variables=variables)


@pytest.mark.parametrize("build", BUILDERS)
def test_input_variables_are_copied(build):
    variables = {"a": "1"}
    request = build(input_variables=variables)
    variables["b"] = "2"

    assert request.to_json()["inputContext"]["inputVariables"] == {"a": "1"}


# --- body size ----------------------------------------------------------------------


@pytest.mark.parametrize("build", BUILDERS)
def test_body_over_64_kib_is_rejected_and_exactly_64_kib_accepted(build):
    base = wire_size(build(input_variables={"blob": ""}).to_json())
    fits = 64 * 1024 - base

    accepted = build(input_variables={"blob": "x" * fits})
    assert wire_size(accepted.to_json()) == 64 * 1024

    with pytest.raises(InvalidRequestError, match="65536") as caught:
        build(input_variables={"blob": "x" * (fits + 1)})
    assert "xxxx" not in str(caught.value)


def test_body_size_is_measured_as_sent_on_the_wire():
    # 12,000 x "é" is 24,000 bytes of UTF-8, about 24 KiB on the wire: well under 64 KiB.
    request = phone(input_variables={"name": "é" * 12_000})

    body = json.dumps(request.to_json(), ensure_ascii=False, separators=(",", ":")).encode()
    assert len(body) < 64 * 1024


# --- SIP ----------------------------------------------------------------------------


def test_return_uri_of_exactly_1024_characters_is_accepted():
    uri = "sip:" + "a" * 1020
    assert len(uri) == 1024

    request = sip(return_uri=uri, return_transfer_type="REFER")

    assert request.to_json()["sip"]["returnURI"] == uri


def test_return_uri_over_1024_characters_is_rejected():
    uri = "sip:" + "a" * 1021
    with pytest.raises(InvalidRequestError, match=r"sip\.returnURI.*1024"):
        sip(return_uri=uri, return_transfer_type="REFER")


@pytest.mark.parametrize(
    "uri",
    ["http://customer-sbc.example.com", "tel:+15551234567", "user@host", "", " sip:x@y", 5],
)
def test_non_sip_return_uri_is_rejected(uri):
    with pytest.raises(InvalidRequestError, match=r"sip\.returnURI"):
        sip(return_uri=uri, return_transfer_type="REFER")


@pytest.mark.parametrize("uri", ["sip:a@b", "sips:a@b:5061", "SIP:a@b"])
def test_sip_and_sips_uris_are_accepted(uri):
    assert sip(return_uri=uri, return_transfer_type="INVITE").return_uri == uri


def test_return_uri_with_control_characters_is_rejected():
    with pytest.raises(InvalidRequestError, match="control characters"):
        sip(return_uri="sip:a@b\r\nX-Evil: 1", return_transfer_type="REFER")


@pytest.mark.parametrize("kind", ["REFER", "INVITE", ReturnTransferType.REFER, "invite"])
def test_refer_or_invite_without_return_uri_is_rejected(kind):
    with pytest.raises(InvalidRequestError, match=r"sip\.returnURI is required"):
        sip(return_transfer_type=kind)


def test_bye_without_return_uri_is_accepted():
    request = sip(return_transfer_type="BYE")

    assert request.return_transfer_type is ReturnTransferType.BYE
    assert request.to_json()["sip"] == {"returnTransferType": "BYE"}


@pytest.mark.parametrize("kind", ["PUSH", "", "BYEE", 3])
def test_bad_return_transfer_type_is_rejected(kind):
    with pytest.raises(InvalidRequestError, match=r"sip\.returnTransferType"):
        sip(return_uri=SIP_RETURN_URI, return_transfer_type=kind)


@pytest.mark.parametrize(
    ("given", "expected"),
    [("refer", ReturnTransferType.REFER), (" Invite ", ReturnTransferType.INVITE)],
)
def test_return_transfer_type_is_normalised(given, expected):
    request = sip(return_uri=SIP_RETURN_URI, return_transfer_type=given)

    assert request.return_transfer_type is expected
    assert request.to_json()["sip"]["returnTransferType"] == expected.value


@pytest.mark.parametrize("kind", ["REFER", "BYE"])
def test_invite_authentication_with_refer_or_bye_is_rejected(kind):
    auth = InviteAuthentication(username="u", password="p")
    with pytest.raises(InvalidRequestError, match="returnInviteAuthentication"):
        sip(return_uri=SIP_RETURN_URI, return_transfer_type=kind, return_invite_authentication=auth)


def test_invite_authentication_without_username_is_rejected():
    auth = InviteAuthentication(username="", password="p")
    with pytest.raises(InvalidRequestError, match="returnInviteAuthentication"):
        sip(
            return_uri=SIP_RETURN_URI,
            return_transfer_type="INVITE",
            return_invite_authentication=auth,
        )


def test_invite_password_is_not_in_request_repr():
    auth = InviteAuthentication(username="your_username", password="hunter2-pass")
    request = sip(
        return_uri=SIP_RETURN_URI, return_transfer_type="INVITE", return_invite_authentication=auth
    )

    assert "hunter2-pass" not in repr(request)


# --- every error is an InvalidRequestError and a ValueError -------------------------


BAD_REQUESTS: list[Callable[[], Any]] = [
    lambda: phone(id=""),
    lambda: phone(external_conversation_id="x\n"),
    lambda: phone(country="XX"),
    lambda: phone(input_variables={"k": 1}),
    lambda: phone(input_variables={"k": "x" * 70_000}),
    lambda: sip(return_uri="sip:" + "a" * 1021),
    lambda: sip(return_uri="http://x"),
    lambda: sip(return_transfer_type="REFER"),
    lambda: sip(return_transfer_type="NOPE"),
    lambda: sip(
        return_uri=SIP_RETURN_URI,
        return_transfer_type="REFER",
        return_invite_authentication=InviteAuthentication("u", "p"),
    ),
    lambda: request_from_json([]),
    lambda: request_from_json({"id": "t", "externalConversationId": "c", "type": "FAX"}),
]


@pytest.mark.parametrize("make", BAD_REQUESTS)
def test_every_error_is_invalid_request_error_and_value_error(make):
    with pytest.raises(ValueError, match=r"\w") as caught:
        make()

    assert isinstance(caught.value, InvalidRequestError)


# --- to_json: the documented shapes -------------------------------------------------


def test_phone_number_body_matches_the_pstn_guide():
    request = PhoneNumberTransferRequest(
        id="[Your Transfer Id]",
        external_conversation_id="[Your Conversation Id]",
        country="US",
        task_name="call_routing",
        input_variables={"accountNumber": "3434", "name": "John Doe"},
    )

    assert request.to_json() == {
        "id": "[Your Transfer Id]",
        "externalConversationId": "[Your Conversation Id]",
        "type": "PHONE_NUMBER",
        "phoneNumber": {"country": "US"},
        "inputContext": {
            "taskName": "call_routing",
            "inputVariables": {"accountNumber": "3434", "name": "John Doe"},
        },
    }


def test_phone_number_reconnect_body_has_no_input_context():
    request = PhoneNumberTransferRequest(id="new-id", external_conversation_id="conv-1")

    assert request.to_json() == {
        "id": "new-id",
        "externalConversationId": "conv-1",
        "type": "PHONE_NUMBER",
        "phoneNumber": {"country": "US"},
    }


def test_task_name_only_gives_input_context_without_variables():
    assert phone(task_name="welcome").to_json()["inputContext"] == {"taskName": "welcome"}


def test_sip_body_matches_the_sip_guide():
    request = SipTransferRequest(
        id="[Your Transfer Id]",
        external_conversation_id="[Your Conversation Id]",
        return_uri=SIP_RETURN_URI,
        task_name="call_routing",
        input_variables={"accountNumber": "3434", "name": "John Doe"},
    )

    assert request.to_json() == {
        "id": "[Your Transfer Id]",
        "externalConversationId": "[Your Conversation Id]",
        "type": "SIP",
        "sip": {"returnURI": SIP_RETURN_URI},
        "inputContext": DOC_INPUT_CONTEXT,
    }


def test_sip_refer_reconnect_body():
    request = SipTransferRequest(
        id="new-id",
        external_conversation_id="conv-1",
        return_uri=SIP_RETURN_URI,
        return_transfer_type=ReturnTransferType.REFER,
    )

    assert request.to_json() == {
        "id": "new-id",
        "externalConversationId": "conv-1",
        "type": "SIP",
        "sip": {"returnURI": SIP_RETURN_URI, "returnTransferType": "REFER"},
    }


def test_sip_invite_body_with_authentication():
    request = SipTransferRequest(
        id="[Your Transfer Id]",
        external_conversation_id="[Your Conversation Id]",
        return_uri=SIP_RETURN_URI,
        return_transfer_type="INVITE",
        return_invite_authentication=InviteAuthentication("your_username", "your_password"),
        task_name="call_routing",
        input_variables={"accountNumber": "3434", "name": "John Doe"},
    )

    body = request.to_json()
    assert body == {
        "id": "[Your Transfer Id]",
        "externalConversationId": "[Your Conversation Id]",
        "type": "SIP",
        "sip": {
            "returnURI": SIP_RETURN_URI,
            "returnTransferType": "INVITE",
            "returnInviteAuthentication": {
                "username": "your_username",
                "password": "your_password",
            },
        },
        "inputContext": DOC_INPUT_CONTEXT,
    }
    # plain JSON types only: str, not a StrEnum member
    assert type(body["sip"]["returnTransferType"]) is str
    assert json.loads(json.dumps(body)) == body


# --- request_from_json --------------------------------------------------------------


def test_request_from_json_reads_the_documented_pstn_body():
    doc = {
        "id": "[Your Transfer Id]",
        "externalConversationId": "[Your Conversation Id]",
        "type": "PHONE_NUMBER",
        "phoneNumber": {"country": "US"},
        "inputContext": DOC_INPUT_CONTEXT,
    }
    request = request_from_json(doc)

    assert isinstance(request, PhoneNumberTransferRequest)
    assert request.to_json() == doc


def test_request_from_json_reads_the_documented_sip_invite_body():
    doc = {
        "id": "[Your Transfer Id]",
        "externalConversationId": "[Your Conversation Id]",
        "type": "SIP",
        "sip": {
            "returnURI": SIP_RETURN_URI,
            "returnTransferType": "INVITE",
            "returnInviteAuthentication": {"username": "your_username", "password": "pw"},
        },
        "inputContext": DOC_INPUT_CONTEXT,
    }
    request = request_from_json(doc)

    assert isinstance(request, SipTransferRequest)
    assert request.return_invite_authentication == InviteAuthentication("your_username", "pw")
    assert request.to_json() == doc


def test_request_from_json_accepts_alternative_spellings():
    raw = {
        "id": "t-1",
        "externalConversationId": "c-1",
        "type": "sip",
        "sip": {"returnUri": "sip:transfer@your-company.com:5060", "returnTransferType": "refer"},
        "inputContext": {"taskName": "welcome", "variables": {"email": "example@gmail.com"}},
    }
    request = request_from_json(raw)

    assert isinstance(request, SipTransferRequest)
    assert request.to_json() == {
        "id": "t-1",
        "externalConversationId": "c-1",
        "type": "SIP",
        "sip": {
            "returnURI": "sip:transfer@your-company.com:5060",
            "returnTransferType": "REFER",
        },
        "inputContext": {"taskName": "welcome", "inputVariables": {"email": "example@gmail.com"}},
    }


def test_request_from_json_accepts_lower_case_type_and_country():
    raw = {
        "id": "t-1",
        "externalConversationId": "c-1",
        "type": "phone_number",
        "phoneNumber": {"country": "us"},
    }
    request = request_from_json(raw)

    assert isinstance(request, PhoneNumberTransferRequest)
    assert request.to_json()["type"] == "PHONE_NUMBER"
    assert request.to_json()["phoneNumber"] == {"country": "US"}


def test_request_from_json_sip_without_sip_section_is_a_default_bye():
    request = request_from_json({"id": "t-1", "externalConversationId": "c-1", "type": "SIP"})

    assert isinstance(request, SipTransferRequest)
    assert request.to_json()["sip"] == {}


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ("not an object", "object"),
        ({"externalConversationId": "c", "type": "SIP"}, "id"),
        ({"id": "t", "type": "SIP"}, "externalConversationId"),
        ({"id": "t", "externalConversationId": "c"}, "type"),
        ({"id": "t", "externalConversationId": "c", "type": "FAX"}, "type"),
        ({"id": "t", "externalConversationId": "c", "type": "PHONE_NUMBER"}, "phoneNumber"),
        (
            {"id": "t", "externalConversationId": "c", "type": "PHONE_NUMBER", "phoneNumber": {}},
            "phoneNumber.country",
        ),
        ({"id": "t", "externalConversationId": "c", "type": "SIP", "sip": "x"}, "sip"),
        (
            {"id": "t", "externalConversationId": "c", "type": "SIP", "inputContext": []},
            "inputContext",
        ),
        (
            {
                "id": "t",
                "externalConversationId": "c",
                "type": "SIP",
                "inputContext": {"taskName": 5},
            },
            "inputContext.taskName",
        ),
        (
            {
                "id": "t",
                "externalConversationId": "c",
                "type": "SIP",
                "inputContext": {"inputVariables": {"pin": 123456}},
            },
            "pin",
        ),
        (
            {
                "id": "t",
                "externalConversationId": "c",
                "type": "SIP",
                "sip": {"returnURI": "sip:a@b", "returnInviteAuthentication": "u:p"},
            },
            "sip.returnInviteAuthentication",
        ),
    ],
)
def test_request_from_json_rejects_bad_bodies_naming_the_field(raw, names):
    with pytest.raises(InvalidRequestError) as caught:
        request_from_json(raw)

    assert names in str(caught.value)
    assert "123456" not in str(caught.value)
