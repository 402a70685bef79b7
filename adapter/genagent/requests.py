"""Create-transfer requests, checked before anything is sent.

The same rules parse a raw JSON body in the sandbox, so the emulator and the client
agree on what the API accepts. Every violation is an InvalidRequestError (a
ValueError) that names the JSON field; caller data never appears in the message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from adapter.genagent.countries import ISO_3166_ALPHA2
from adapter.genagent.errors import InvalidRequestError
from adapter.genagent.models import InviteAuthentication, ReturnTransferType, TransferKind

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_ID_LENGTH = 256
MAX_RETURN_URI_LENGTH = 1024
MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class PhoneNumberTransferRequest:
    """Ask for a temporary number to dial (type PHONE_NUMBER)."""

    id: str
    external_conversation_id: str
    country: str = "US"
    task_name: str | None = None
    input_variables: Mapping[str, str] = field(default_factory=dict)

    _body: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_common(self.id, self.external_conversation_id, self.task_name, self.input_variables)
        object.__setattr__(self, "country", _country(self.country))
        object.__setattr__(self, "input_variables", dict(self.input_variables))
        object.__setattr__(self, "_body", _encoded(self.to_json()))

    def encoded(self) -> bytes:
        """The JSON body as sent: compact UTF-8, checked against MAX_BODY_BYTES."""
        return self._body

    def to_json(self) -> dict[str, Any]:
        """The JSON body of POST /generativeagent/v1/call-transfers."""
        body: dict[str, Any] = {
            "id": self.id,
            "externalConversationId": self.external_conversation_id,
            "type": TransferKind.PHONE_NUMBER.value,
            "phoneNumber": {"country": self.country},
        }
        _add_input_context(body, self.task_name, self.input_variables)
        return body


@dataclass(frozen=True, slots=True)
class SipTransferRequest:
    """Create a SIP transfer, returned by BYE, REFER or INVITE (type SIP)."""

    id: str
    external_conversation_id: str
    return_uri: str | None = None
    return_transfer_type: ReturnTransferType | None = None
    return_invite_authentication: InviteAuthentication | None = None
    task_name: str | None = None
    input_variables: Mapping[str, str] = field(default_factory=dict)
    _body: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_common(self.id, self.external_conversation_id, self.task_name, self.input_variables)
        object.__setattr__(self, "input_variables", dict(self.input_variables))
        kind = self.return_transfer_type
        if kind is not None:
            try:
                kind = ReturnTransferType(str(kind).strip().upper())
            except ValueError:
                raise InvalidRequestError(
                    "sip.returnTransferType must be one of BYE, REFER, INVITE"
                ) from None
            object.__setattr__(self, "return_transfer_type", kind)
        uri = self.return_uri
        if uri is not None:
            if not isinstance(uri, str) or not uri.lower().startswith(("sip:", "sips:")):
                raise InvalidRequestError("sip.returnURI must be a sip: or sips: URI")
            if len(uri) > MAX_RETURN_URI_LENGTH:
                raise InvalidRequestError(
                    f"sip.returnURI is {len(uri)} characters; the limit is {MAX_RETURN_URI_LENGTH}"
                )
            _check_no_control("sip.returnURI", uri)
        if kind in (ReturnTransferType.REFER, ReturnTransferType.INVITE) and not uri:
            raise InvalidRequestError(f"sip.returnURI is required for returnTransferType {kind}")
        auth = self.return_invite_authentication
        if auth is not None:
            if kind in (ReturnTransferType.BYE, ReturnTransferType.REFER):
                raise InvalidRequestError(
                    "sip.returnInviteAuthentication applies only to returnTransferType INVITE"
                )
            if not isinstance(auth, InviteAuthentication) or not auth.username:
                raise InvalidRequestError(
                    "sip.returnInviteAuthentication needs a username and a password"
                )
        object.__setattr__(self, "_body", _encoded(self.to_json()))

    def encoded(self) -> bytes:
        """The JSON body as sent: compact UTF-8, checked against MAX_BODY_BYTES."""
        return self._body

    def to_json(self) -> dict[str, Any]:
        """The JSON body of POST /generativeagent/v1/call-transfers."""
        sip: dict[str, Any] = {}
        if self.return_uri is not None:
            sip["returnURI"] = self.return_uri
        if self.return_transfer_type is not None:
            sip["returnTransferType"] = str(self.return_transfer_type)
        auth = self.return_invite_authentication
        if auth is not None:
            sip["returnInviteAuthentication"] = {
                "username": auth.username,
                "password": auth.password,
            }
        body: dict[str, Any] = {
            "id": self.id,
            "externalConversationId": self.external_conversation_id,
            "type": TransferKind.SIP.value,
            "sip": sip,
        }
        _add_input_context(body, self.task_name, self.input_variables)
        return body


TransferRequest = PhoneNumberTransferRequest | SipTransferRequest


def request_from_json(body: Any) -> TransferRequest:
    """Parse a raw create body with the same rules (and spellings) the API accepts."""
    if not isinstance(body, Mapping):
        raise InvalidRequestError("the request body must be a JSON object")
    ident = _json_str(body, "id")
    conversation = _json_str(body, "externalConversationId")
    kind = body.get("type")
    context = body.get("inputContext")
    task_name: str | None = None
    variables: Any = {}
    if context is not None:
        if not isinstance(context, Mapping):
            raise InvalidRequestError("inputContext must be an object")
        task_name = context.get("taskName")
        if task_name is not None and not isinstance(task_name, str):
            raise InvalidRequestError("inputContext.taskName must be a string")
        variables = context.get("inputVariables", context.get("variables")) or {}
    if not isinstance(kind, str):
        raise InvalidRequestError("type is required: PHONE_NUMBER or SIP")
    kind = kind.strip().upper()
    if kind == TransferKind.PHONE_NUMBER:
        phone = body.get("phoneNumber")
        if not isinstance(phone, Mapping):
            raise InvalidRequestError("phoneNumber is required for type PHONE_NUMBER")
        return PhoneNumberTransferRequest(
            id=ident,
            external_conversation_id=conversation,
            country=phone.get("country"),  # type: ignore[arg-type]  # checked in __post_init__
            task_name=task_name,
            input_variables=variables,
        )
    if kind == TransferKind.SIP:
        sip = body.get("sip") or {}
        if not isinstance(sip, Mapping):
            raise InvalidRequestError("sip must be an object")
        auth = sip.get("returnInviteAuthentication")
        invite_auth = None
        if auth is not None:
            if not isinstance(auth, Mapping):
                raise InvalidRequestError("sip.returnInviteAuthentication must be an object")
            invite_auth = InviteAuthentication(
                username=str(auth.get("username") or ""), password=str(auth.get("password") or "")
            )
        return SipTransferRequest(
            id=ident,
            external_conversation_id=conversation,
            return_uri=sip.get("returnURI", sip.get("returnUri")),
            return_transfer_type=sip.get("returnTransferType"),
            return_invite_authentication=invite_auth,
            task_name=task_name,
            input_variables=variables,
        )
    raise InvalidRequestError("type must be PHONE_NUMBER or SIP")


def _check_common(ident: Any, conversation: Any, task_name: Any, variables: Any) -> None:
    _check_id("id", ident)
    _check_id("externalConversationId", conversation)
    if task_name is not None:
        if not isinstance(task_name, str) or not task_name.strip():
            raise InvalidRequestError("inputContext.taskName must be a non-empty string")
        _check_no_control("inputContext.taskName", task_name)
    if not isinstance(variables, Mapping):
        raise InvalidRequestError("inputContext.inputVariables must be an object")
    for key, value in variables.items():
        if not isinstance(key, str) or not key:
            raise InvalidRequestError("inputContext.inputVariables keys must be non-empty strings")
        if not isinstance(value, str):
            raise InvalidRequestError(
                f"inputContext.inputVariables[{key!r}] must be a string, not {type(value).__name__}"
            )


def _check_id(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError(f"{name} must be a non-empty string")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidRequestError(f"{name} is longer than {MAX_ID_LENGTH} characters")
    _check_no_control(name, value)


def _check_no_control(name: str, value: str) -> None:
    if _CONTROL.search(value):
        raise InvalidRequestError(f"{name} must not contain control characters")


def _country(value: Any) -> str:
    code = value.strip().upper() if isinstance(value, str) else None
    if code not in ISO_3166_ALPHA2:
        raise InvalidRequestError(
            "phoneNumber.country must be an ISO 3166 alpha-2 country code such as 'US'"
        )
    return code


def _encoded(body: Mapping[str, Any]) -> bytes:
    # Encoded once, as httpx would encode it: compact UTF-8 JSON.
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    if len(data) > MAX_BODY_BYTES:
        raise InvalidRequestError(
            f"the request body would be {len(data)} bytes; the limit is {MAX_BODY_BYTES}"
        )
    return data


def _json_str(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise InvalidRequestError(f"{key} must be a non-empty string")
    return value


def _add_input_context(
    body: dict[str, Any], task_name: str | None, variables: Mapping[str, str]
) -> None:
    context: dict[str, Any] = {}
    if task_name is not None:
        context["taskName"] = task_name
    if variables:
        context["inputVariables"] = dict(variables)
    if context:
        body["inputContext"] = context
