"""The transfer mode and the SIP settings both fronts read (TRANSFER_MODE, SIP_*)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from adapter.config import EnvReader
from adapter.genagent.models import InviteAuthentication, ReturnTransferType
from adapter.genagent.requests import MAX_RETURN_URI_LENGTH

# Room left in a returnURI for the ``;transfer=<transfer id>`` parameter the flow adds.
RETURN_URI_ROOM = 300


class TransferMode(StrEnum):
    """How a hand-off reaches GenerativeAgent."""

    PHONE_NUMBER = "phone-number"  # dial a temporary number (PSTN)
    SIP_API = "sip-api"  # API-created SIP transfer, X-ASAPP-CallTransferId header
    SIP_HEADERS = "sip-headers"  # context in X-GA-* headers, no API call

    @classmethod
    def parse(cls, text: str | None) -> TransferMode | None:
        """``phone-number``, ``sip-api`` or ``sip-headers`` (any case, ``_`` for ``-``);
        None for anything else."""
        if not isinstance(text, str):
            return None
        try:
            return cls(text.strip().lower().replace("_", "-")[:20])
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class SipTransferSettings:
    """Where SIP hand-offs go and how GenerativeAgent returns them."""

    mode: TransferMode = TransferMode.PHONE_NUMBER
    asapp_uri: str | None = None  # API mode: ASAPP's static SIP URI
    asapp_domain: str | None = None  # headers mode: ASAPP's static SIP domain, as a URI
    return_uri: str | None = None  # API mode: sip.returnURI (the flow adds the transfer id)
    return_type: ReturnTransferType | None = None  # None: ASAPP's static configuration
    invite_auth: InviteAuthentication | None = None

    def target(self, mode: TransferMode) -> str | None:
        """The SIP URI to send a hand-off of ``mode`` to (None: not configured)."""
        if mode is TransferMode.SIP_API:
            return self.asapp_uri
        if mode is TransferMode.SIP_HEADERS:
            return self.asapp_domain
        return None

    @classmethod
    def read(cls, env: EnvReader) -> SipTransferSettings:
        """Read TRANSFER_MODE and the SIP_* variables; problems are collected in ``env``.

        Only the deployment's own mode must be complete: a hand-off that asks for a mode
        whose settings are missing goes to the fallback.
        """
        mode_text = env.text("TRANSFER_MODE", TransferMode.PHONE_NUMBER.value)
        mode = TransferMode.parse(mode_text)
        if mode is None:
            env.problems.append("TRANSFER_MODE must be phone-number, sip-api or sip-headers")
            mode = TransferMode.PHONE_NUMBER
        return_type = None
        type_text = env.text("SIP_RETURN_TRANSFER_TYPE")
        if type_text is not None:
            try:
                return_type = ReturnTransferType(type_text.upper())
            except ValueError:
                env.problems.append("SIP_RETURN_TRANSFER_TYPE must be BYE, REFER or INVITE")
        settings = cls(
            mode=mode,
            asapp_uri=_sip_uri(env, "SIP_ASAPP_URI"),
            asapp_domain=_sip_domain(env),
            return_uri=_sip_uri(env, "SIP_RETURN_URI", MAX_RETURN_URI_LENGTH - RETURN_URI_ROOM),
            return_type=return_type,
            invite_auth=_invite_auth(env, return_type),
        )
        settings._check_complete(env)
        return settings

    def _check_complete(self, env: EnvReader) -> None:
        if self.mode is TransferMode.SIP_API and self.asapp_uri is None:
            env.problems.append(
                "SIP_ASAPP_URI is not set: ASAPP's SIP URI, for TRANSFER_MODE=sip-api"
            )
        if self.mode is TransferMode.SIP_HEADERS and self.asapp_domain is None:
            env.problems.append(
                "SIP_ASAPP_DOMAIN is not set: ASAPP's SIP domain, for TRANSFER_MODE=sip-headers"
            )
        needs_return = self.return_type in (ReturnTransferType.REFER, ReturnTransferType.INVITE)
        if needs_return and self.return_uri is None:
            env.problems.append(
                "SIP_RETURN_URI is not set: required for SIP_RETURN_TRANSFER_TYPE="
                f"{self.return_type}"
            )


def _sip_uri(env: EnvReader, name: str, limit: int = 1024) -> str | None:
    value = env.text(name)
    if value is None:
        return None
    if not value.lower().startswith(("sip:", "sips:")) or any(c in value for c in ' <>"\r\n'):
        env.problems.append(f"{name} must be a sip: or sips: URI without spaces or <>")
        return None
    if len(value) > limit:
        env.problems.append(f"{name} must be at most {limit} characters")
        return None
    return value


def _sip_domain(env: EnvReader) -> str | None:
    """SIP_ASAPP_DOMAIN: a host (``ga.example.com``) or a full sip: URI."""
    value = env.text("SIP_ASAPP_DOMAIN")
    if value is None:
        return None
    if not value.lower().startswith(("sip:", "sips:")):
        value = f"sip:{value}"
    if any(c in value for c in ' <>"?\r\n') or len(value) > 512:
        env.problems.append("SIP_ASAPP_DOMAIN must be a host name or a sip: URI")
        return None
    return value


def _invite_auth(
    env: EnvReader, return_type: ReturnTransferType | None
) -> InviteAuthentication | None:
    username = env.text("SIP_RETURN_INVITE_USERNAME")
    password = env.text("SIP_RETURN_INVITE_PASSWORD")
    if username is None and password is None:
        return None
    if not username or not password:
        env.problems.append("SIP_RETURN_INVITE_USERNAME and SIP_RETURN_INVITE_PASSWORD go together")
        return None
    if return_type is not ReturnTransferType.INVITE:
        env.problems.append(
            "SIP_RETURN_INVITE_USERNAME/PASSWORD apply only to SIP_RETURN_TRANSFER_TYPE=INVITE"
        )
        return None
    return InviteAuthentication(username=username, password=password)
