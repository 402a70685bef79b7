"""The SIP settings: TRANSFER_MODE, SIP_* and TWILIO_SIP_*, every problem named."""

from __future__ import annotations

from adapter.config import EnvReader
from adapter.genagent.models import ReturnTransferType
from adapter.sip import SipTransferSettings, TransferMode


def test_settings_default_to_phone_numbers() -> None:
    env = EnvReader({})
    assert SipTransferSettings.read(env) == SipTransferSettings()
    assert env.problems == []


def test_settings_read_a_complete_sip_deployment() -> None:
    env = EnvReader(
        {
            "TRANSFER_MODE": "SIP_API",
            "SIP_ASAPP_URI": "sip:ga@asapp.example.com",
            "SIP_ASAPP_DOMAIN": "headers.asapp.example.com",
            "SIP_RETURN_URI": "sip:return@x.sip.twilio.com",
            "SIP_RETURN_TRANSFER_TYPE": "invite",
            "SIP_RETURN_INVITE_USERNAME": "ga",
            "SIP_RETURN_INVITE_PASSWORD": "pw",
        }
    )
    settings = SipTransferSettings.read(env)
    assert env.problems == []
    assert settings.mode is TransferMode.SIP_API
    assert settings.target(TransferMode.SIP_HEADERS) == "sip:headers.asapp.example.com"
    assert settings.return_type is ReturnTransferType.INVITE
    assert settings.invite_auth is not None
    assert "pw" not in repr(settings)


def test_settings_name_every_problem() -> None:
    env = EnvReader(
        {
            "TRANSFER_MODE": "sip-headers",
            "SIP_ASAPP_URI": "http://not-sip",
            "SIP_RETURN_TRANSFER_TYPE": "REFER",
            "SIP_RETURN_INVITE_USERNAME": "only-user",
        }
    )
    SipTransferSettings.read(env)
    text = " ".join(env.problems)
    for name in ("SIP_ASAPP_URI", "SIP_ASAPP_DOMAIN", "SIP_RETURN_URI", "SIP_RETURN_INVITE"):
        assert name in text
    bad = EnvReader({"TRANSFER_MODE": "carrier-pigeon"})
    SipTransferSettings.read(bad)
    assert "TRANSFER_MODE" in bad.problems[0]


def test_twilio_sip_credentials_go_together_and_stay_secret() -> None:
    from adapter.twilio.settings import TwilioSettings

    base = {"TWILIO_AUTH_TOKEN": "t" * 32, "AGENT_DESTINATION": "+15550100"}
    env = EnvReader(base | {"TWILIO_SIP_USERNAME": "adapter", "TWILIO_SIP_PASSWORD": "pw-secret"})
    settings = TwilioSettings.read(env)
    assert env.problems == []
    assert settings.sip_username == "adapter"
    assert settings.sip_password is not None
    assert "pw-secret" not in repr(settings)
    half = EnvReader(base | {"TWILIO_SIP_USERNAME": "adapter"})
    assert TwilioSettings.read(half).sip_username is None
    assert half.problems == ["TWILIO_SIP_USERNAME and TWILIO_SIP_PASSWORD go together"]
