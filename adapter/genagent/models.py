"""Typed call-transfer resource, parsed tolerantly from the API's JSON.

The ASAPP documents disagree on spellings (``expireAt``/``expiresAt``,
``returnURI``/``returnUri``, ``inputVariables``/``variables``, lower-case status);
every documented spelling is accepted. Unknown fields land in ``extra`` and
unknown enum values are kept as plain upper-case strings, so a new API value never
breaks a live call. A missing required field raises MalformedResponseError naming
it, and so does any other unusable body: parsing raises nothing else.

Text is cleaned here, once (see adapter/genagent/values.py): strings lose the
characters XML cannot carry, variables with unusable names are skipped with a
warning, non-string values are written the JSON way. The transfer number alone is
kept as sent (trimmed): ``dialable_number`` decides whether it may be dialed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from adapter.genagent.errors import MalformedResponseError
from adapter.genagent.values import clean_text, is_variable_name, variable_value
from adapter.observe.masking import mask_name

log = logging.getLogger("adapter.genagent")


class TransferStatus(StrEnum):
    """Lifecycle of a call transfer."""

    ACTIVE = "ACTIVE"
    ONGOING = "ONGOING"
    COMPLETED = "COMPLETED"
    EXPIRED = "EXPIRED"


class TransferKind(StrEnum):
    """How the call reaches GenerativeAgent (the resource's ``type``)."""

    PHONE_NUMBER = "PHONE_NUMBER"
    SIP = "SIP"


class TransferType(StrEnum):
    """What GenerativeAgent decided when the conversation ended."""

    AGENT = "AGENT"
    SYSTEM = "SYSTEM"
    CALLER_DISCONNECT = "CALLER_DISCONNECT"


class ReturnTransferType(StrEnum):
    """How a SIP transfer returns the call."""

    BYE = "BYE"
    REFER = "REFER"
    INVITE = "INVITE"


E = TypeVar("E", bound=StrEnum)


def parse_enum(enum: type[E], value: str) -> E | str:
    """Return the member for ``value`` in any case, or the upper-cased raw value if unknown."""
    normalized = value.strip().upper()
    try:
        return enum(normalized)
    except ValueError:
        return normalized


@dataclass(frozen=True, slots=True)
class InputContext:
    """What GenerativeAgent is told when the call arrives."""

    task_name: str | None = None
    input_variables: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutputContext:
    """What GenerativeAgent decided and learned when the conversation ended."""

    transfer_type: TransferType | str | None = None
    current_task_name: str | None = None
    reference_variables: Mapping[str, str] = field(default_factory=dict)
    transfer_variables: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    """The temporary number of a PHONE_NUMBER transfer."""

    transfer_number: str | None = None
    country: str | None = None
    expire_at: datetime | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        # A phone number is caller-adjacent data: keep it out of reprs and logs.
        return (
            f"PhoneNumber(transfer_number={_mask(self.transfer_number)!r}, "
            f"country={self.country!r}, expire_at={self.expire_at!r})"
        )


@dataclass(frozen=True, slots=True)
class InviteAuthentication:
    """Credentials ASAPP uses for an INVITE return."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"InviteAuthentication(username={self.username!r}, password='***')"


@dataclass(frozen=True, slots=True)
class SipSettings:
    """The SIP section of a SIP transfer."""

    return_uri: str | None = None
    return_transfer_type: ReturnTransferType | str | None = None
    return_invite_authentication: InviteAuthentication | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CallTransfer:
    """A GenerativeAgent call-transfer resource."""

    id: str
    external_conversation_id: str
    status: TransferStatus | str
    type: TransferKind | str
    created_at: datetime | None = None
    call_received_at: datetime | None = None
    completed_at: datetime | None = None
    input_context: InputContext | None = None
    output_context: OutputContext | None = None
    phone_number: PhoneNumber | None = None
    sip: SipSettings | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def transfer_number(self) -> str | None:
        """The number to dial, for a PHONE_NUMBER transfer."""
        return self.phone_number.transfer_number if self.phone_number else None

    @property
    def expire_at(self) -> datetime | None:
        """When the transfer number stops working."""
        return self.phone_number.expire_at if self.phone_number else None

    @classmethod
    def from_json(cls, data: Any) -> CallTransfer:
        """Parse the API's JSON object; raises MalformedResponseError naming what is wrong."""
        return parse_call_transfer(data)


def _mask(number: str | None) -> str | None:
    if number is None:
        return None
    return "***" + number[-2:] if len(number) > 4 else "***"


# --- parsing -------------------------------------------------------------------------

_TOP_KEYS = {
    "id",
    "externalConversationId",
    "status",
    "type",
    "createdAt",
    "callReceivedAt",
    "completedAt",
    "inputContext",
    "outputContext",
    "phoneNumber",
    "sip",
}


def parse_call_transfer(data: Any) -> CallTransfer:
    """Parse a call-transfer JSON object (see module docstring for the tolerance rules)."""
    try:
        return _call_transfer(data)
    except MalformedResponseError:
        raise
    except (ValueError, TypeError, RecursionError) as exc:
        # e.g. a value nested too deep to write again, or a number JSON cannot write
        kind = type(exc).__name__
        raise MalformedResponseError(f"call transfer: unusable value ({kind})") from None


def _call_transfer(data: Any) -> CallTransfer:
    obj = _object(data, "call transfer")
    return CallTransfer(
        id=_required_str(obj, "id"),
        external_conversation_id=_required_str(obj, "externalConversationId"),
        status=parse_enum(TransferStatus, _required_str(obj, "status")),
        type=parse_enum(TransferKind, _required_str(obj, "type")),
        created_at=_timestamp(obj, "createdAt"),
        call_received_at=_timestamp(obj, "callReceivedAt"),
        completed_at=_timestamp(obj, "completedAt"),
        input_context=_input_context(obj.get("inputContext")),
        output_context=_output_context(obj.get("outputContext")),
        phone_number=_phone_number(obj.get("phoneNumber")),
        sip=_sip(obj.get("sip")),
        extra=_extra(obj, _TOP_KEYS),
    )


def _input_context(value: Any) -> InputContext | None:
    if value is None:
        return None
    obj = _object(value, "inputContext")
    variables_key = "inputVariables" if obj.get("inputVariables") is not None else "variables"
    return InputContext(
        task_name=_optional_str(obj, "taskName", "inputContext.taskName"),
        input_variables=_variables(
            obj.get(variables_key), f"inputContext.{variables_key}", outgoing=False
        ),
        extra=_extra(obj, {"taskName", "inputVariables", "variables"}),
    )


def _output_context(value: Any) -> OutputContext | None:
    if value is None:
        return None
    obj = _object(value, "outputContext")
    kind = _optional_str(obj, "transferType", "outputContext.transferType")
    return OutputContext(
        transfer_type=parse_enum(TransferType, kind) if kind else None,
        current_task_name=_optional_str(obj, "currentTaskName", "outputContext.currentTaskName"),
        reference_variables=_variables(
            obj.get("referenceVariables"), "outputContext.referenceVariables"
        ),
        transfer_variables=_variables(
            obj.get("transferVariables"), "outputContext.transferVariables"
        ),
        extra=_extra(
            obj, {"transferType", "currentTaskName", "referenceVariables", "transferVariables"}
        ),
    )


def _phone_number(value: Any) -> PhoneNumber | None:
    if value is None:
        return None
    obj = _object(value, "phoneNumber")
    expire_key = "expireAt" if "expireAt" in obj else "expiresAt"
    return PhoneNumber(
        transfer_number=_trimmed(_raw_str(obj, "transferNumber", "phoneNumber.transferNumber")),
        country=_optional_str(obj, "country", "phoneNumber.country"),
        expire_at=_timestamp(obj, expire_key, f"phoneNumber.{expire_key}"),
        extra=_extra(obj, {"transferNumber", "country", "expireAt", "expiresAt"}),
    )


def _sip(value: Any) -> SipSettings | None:
    if value is None:
        return None
    obj = _object(value, "sip")
    uri_key = "returnURI" if "returnURI" in obj else "returnUri"
    kind = _optional_str(obj, "returnTransferType", "sip.returnTransferType")
    auth = obj.get("returnInviteAuthentication")
    invite_auth = None
    if auth is not None:
        auth_obj = _object(auth, "sip.returnInviteAuthentication")
        invite_auth = InviteAuthentication(
            username=_optional_str(auth_obj, "username", "") or "",
            password=_optional_str(auth_obj, "password", "") or "",
        )
    return SipSettings(
        return_uri=_optional_str(obj, uri_key, f"sip.{uri_key}"),
        return_transfer_type=parse_enum(ReturnTransferType, kind) if kind else None,
        return_invite_authentication=invite_auth,
        extra=_extra(
            obj, {"returnURI", "returnUri", "returnTransferType", "returnInviteAuthentication"}
        ),
    )


def _object(value: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedResponseError(f"{name}: expected a JSON object, got {type(value).__name__}")
    return value


def _required_str(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise MalformedResponseError(f"call transfer: required field {key!r} is missing")
    if not isinstance(value, str):
        raise MalformedResponseError(f"call transfer: field {key!r} must be a string")
    return clean_text(value)


def _optional_str(obj: Mapping[str, Any], key: str, name: str) -> str | None:
    raw = _raw_str(obj, key, name)
    return None if raw is None else clean_text(raw)


def _raw_str(obj: Mapping[str, Any], key: str, name: str) -> str | None:
    """A string field as sent; a number is taken as its JSON text."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise MalformedResponseError(f"field {name or key!r} must be a string")
    return value if isinstance(value, str) else variable_value(value)


def _trimmed(value: str | None) -> str | None:
    return None if value is None else value.strip()


def _timestamp(obj: Mapping[str, Any], key: str, name: str | None = None) -> datetime | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    label = name or key
    if not isinstance(value, str):
        raise MalformedResponseError(f"field {label!r} must be an ISO 8601 timestamp")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise MalformedResponseError(
            f"field {label!r} is not an ISO 8601 timestamp: {value[:40]!r}"
        ) from None
    # A timestamp without an offset is taken as UTC, as the API's examples are.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _variables(value: Any, name: str, *, outgoing: bool = True) -> dict[str, str]:
    """A clean string-to-string map, values written the JSON way.

    ``outgoing`` variables (the outputContext's, which become SIP headers, TwiML
    parameters and channel variables) must have acceptable names: others are skipped.
    The inputContext only echoes what the adapter sent: its names are just cleaned.
    """
    if value is None:
        return {}
    obj = _object(value, name)
    out: dict[str, str] = {}
    for key, item in obj.items():
        if outgoing and not is_variable_name(key):
            log.warning("%s: skipped a variable with an unusable name %s", name, mask_name(key))
            continue
        out[clean_text(key)] = variable_value(item)
    return out


def _extra(obj: Mapping[str, Any], known: set[str]) -> dict[str, Any]:
    return {key: value for key, value in obj.items() if key not in known}
