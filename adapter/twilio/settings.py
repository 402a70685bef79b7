"""Settings of the Twilio front: webhook security, hand-off inputs, routing targets."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from adapter.config import EnvReader, Secret
from adapter.genagent.countries import ISO_3166_ALPHA2
from adapter.twilio.sids import is_account_sid

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
DEFAULT_FALLBACK_SAY = "Please hold while we connect you to an agent."
DEFAULT_GOODBYE_SAY = "Thank you for calling. Goodbye."
# Said while GenerativeAgent's context is read, when HOLD_AUDIO_URL is unset: never silence.
DEFAULT_HOLD_SAY = "One moment, please."
_NAME = re.compile(r"^[A-Za-z0-9_.@:+-]{1,256}$")


class DestinationKind(StrEnum):
    """What AGENT_DESTINATION names."""

    NUMBER = "number"
    SIP = "sip"
    CLIENT = "client"
    QUEUE = "queue"


@dataclass(frozen=True, slots=True)
class Destination:
    """A place to send the caller: an E.164 number, a SIP URI, a client, or a queue."""

    kind: DestinationKind
    value: str

    @classmethod
    def parse(cls, text: str) -> Destination:
        """``+15551230000``, ``sip:agent@pbx``, ``client:NAME`` or ``queue:NAME``."""
        text = text.strip()
        lowered = text.lower()
        if _E164.match(text):
            return cls(DestinationKind.NUMBER, text)
        if lowered.startswith(("sip:", "sips:")) and "@" in text and " " not in text:
            return cls(DestinationKind.SIP, text)
        for prefix, kind in (
            ("client:", DestinationKind.CLIENT),
            ("queue:", DestinationKind.QUEUE),
        ):
            if lowered.startswith(prefix) and _NAME.match(text[len(prefix) :]):
                return cls(kind, text[len(prefix) :])
        raise ValueError(
            "must be an E.164 number (+15551230000), a SIP URI (sip:agent@pbx.example.com), "
            "client:NAME or queue:NAME"
        )


@dataclass(frozen=True, slots=True)
class TwilioSettings:
    """Everything the Twilio front reads from the environment."""

    auth_token: Secret
    agent_destination: Destination
    account_sid: str | None = None
    public_base_url: str | None = None
    proxy_hops: int = 1
    country: str = "US"
    country_from_call: bool = False
    task_name: str | None = None
    caller_fields: tuple[tuple[str, str], ...] = ()
    system_return_url: str | None = None
    hangup_on_star: bool = False
    agent_time_limit: int | None = None
    workflow_sid: str | None = None
    fallback_say: str = DEFAULT_FALLBACK_SAY
    goodbye_say: str = DEFAULT_GOODBYE_SAY
    hold_audio_url: str | None = None
    hold_say: str = DEFAULT_HOLD_SAY
    # Credentials <Dial><Sip> presents to GenerativeAgent's SIP side, when it asks for them.
    sip_username: str | None = None
    sip_password: Secret | None = None

    @classmethod
    def read(cls, env: EnvReader) -> TwilioSettings:
        """Read the Twilio front's variables; problems are collected in ``env``."""
        token = env.secret("TWILIO_AUTH_TOKEN", "the Auth Token that signs Twilio's webhooks")
        destination = _destination(env)
        country_text = (env.text("TRANSFER_COUNTRY", "US") or "US").upper()
        country_from_call = country_text == "AUTO"
        if not country_from_call and country_text not in ISO_3166_ALPHA2:
            env.problems.append(
                f"TRANSFER_COUNTRY must be an ISO 3166 alpha-2 code or 'auto', got {country_text!r}"
            )
        time_limit = env.integer("AGENT_TIME_LIMIT", 0, minimum=0, maximum=14_400)
        return cls(
            auth_token=token,
            agent_destination=destination,
            account_sid=_account_sid(env),
            public_base_url=_optional_url(env, "PUBLIC_BASE_URL"),
            proxy_hops=env.integer("PROXY_HOPS", 1, minimum=0, maximum=5),
            country="US" if country_from_call else country_text,
            country_from_call=country_from_call,
            task_name=env.text("GA_TASK_NAME"),
            caller_fields=_caller_fields(env),
            system_return_url=_optional_url(env, "SYSTEM_RETURN_URL"),
            hangup_on_star=env.boolean("HANGUP_ON_STAR", False),
            agent_time_limit=time_limit or None,
            workflow_sid=env.text("TWILIO_WORKFLOW_SID"),
            fallback_say=_say(env, "FALLBACK_SAY", DEFAULT_FALLBACK_SAY),
            goodbye_say=_say(env, "GOODBYE_SAY", DEFAULT_GOODBYE_SAY),
            hold_audio_url=_optional_url(env, "HOLD_AUDIO_URL"),
            hold_say=_say(env, "HOLD_SAY", DEFAULT_HOLD_SAY) or DEFAULT_HOLD_SAY,
            **_sip_credentials(env),
        )


def _sip_credentials(env: EnvReader) -> dict[str, Any]:
    """TWILIO_SIP_USERNAME and TWILIO_SIP_PASSWORD, both or neither."""
    username = env.text("TWILIO_SIP_USERNAME")
    password = env.text("TWILIO_SIP_PASSWORD")
    if username is None and password is None:
        return {}
    if not username or not password:
        env.problems.append("TWILIO_SIP_USERNAME and TWILIO_SIP_PASSWORD go together")
        return {}
    return {"sip_username": username, "sip_password": Secret(password)}


def _destination(env: EnvReader) -> Destination:
    text = env.required("AGENT_DESTINATION", "where AGENT routes and every fallback go")
    if not text:
        return Destination(DestinationKind.NUMBER, "")
    try:
        return Destination.parse(text)
    except ValueError as exc:
        env.problems.append(f"AGENT_DESTINATION {exc}")
        return Destination(DestinationKind.NUMBER, "")


def _account_sid(env: EnvReader) -> str | None:
    """TWILIO_ACCOUNT_SID, when set: webhooks from any other account are refused."""
    value = env.text("TWILIO_ACCOUNT_SID")
    if value is not None and not is_account_sid(value):
        env.problems.append("TWILIO_ACCOUNT_SID must be AC followed by 32 hex digits")
        return None
    return value


def _optional_url(env: EnvReader, name: str) -> str | None:
    value = env.text(name)
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        env.problems.append(f"{name} must be an absolute http:// or https:// URL")
        return None
    return value.rstrip("/") if name == "PUBLIC_BASE_URL" else value


def _caller_fields(env: EnvReader) -> tuple[tuple[str, str], ...]:
    """CALLER_FIELDS=From:callerNumber,CallerName -> (("From", "callerNumber"), ...)."""
    text = env.text("CALLER_FIELDS") or ""
    fields: list[tuple[str, str]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        param, _, name = item.partition(":")
        param, name = param.strip(), (name.strip() or param.strip())
        if not param.isidentifier() or not name:
            env.problems.append(f"CALLER_FIELDS entry {item!r} must be Param or Param:variable")
            continue
        fields.append((param, name))
    return tuple(fields)


def _say(env: EnvReader, name: str, default: str) -> str:
    value = env.env.get(name)
    return default if value is None else value.strip()  # set but empty: say nothing
