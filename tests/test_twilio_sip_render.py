"""SIP hand-offs rendered as TwiML: any headers, any credentials, valid documents."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from adapter.config import Secret
from adapter.flow import Hold, SipDial
from adapter.sip import ga_headers, parse_refer_to
from adapter.sip.headers import TWILIO_HEADER_BUDGET
from adapter.twilio.settings import Destination, TwilioSettings
from adapter.twilio.sip import returned_call, sip_headers
from adapter.twilio.twiml import TwimlRenderer

RENDERER = TwimlRenderer(
    TwilioSettings(
        auth_token=Secret("t"),
        agent_destination=Destination.parse("+15550100"),
        sip_username="adapter",
        sip_password=Secret("p&<w>"),
    )
)
URI = "sip:headers.asapp.example.com"
names = st.from_regex(r"[A-Za-z0-9_.-]{1,40}", fullmatch=True)
values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)


@given(
    task=st.none() | values.filter(bool),
    conversation=values.filter(bool),
    variables=st.dictionaries(names, values, max_size=40),
)
def test_any_sip_dial_renders_within_twilios_budget(
    task: str | None, conversation: str, variables: dict[str, str]
) -> None:
    headers = ga_headers(task, conversation, None, variables)
    step = SipDial(3, "CA1-3", URI, headers, 20, "sip-headers")
    root = ET.fromstring(RENDERER.render(step))  # our own output
    dial = root.find("Dial")
    assert dial is not None
    assert dial.get("referUrl") == "/twilio/sip-refer?attempt=3"
    sip = dial.find("Sip")
    assert sip is not None
    assert (sip.get("username"), sip.get("password")) == ("adapter", "p&<w>")
    uri = sip.text or ""
    assert uri.startswith(URI)
    sent = parse_refer_to(uri).headers
    assert len(uri) - len(URI) <= TWILIO_HEADER_BUDGET
    assert list(sent) == list(headers[: len(sent)])  # in order, none altered, the rest dropped
    if len(sent) < len(headers):
        assert all(name.startswith("X-GA-iv-") for name, _ in headers[len(sent) :])


def test_a_hold_for_an_invite_leg_polls_the_call() -> None:
    root = ET.fromstring(RENDERER.render(Hold(2, 0.5, False, "CA" + "1" * 32)))
    assert root.findtext("Redirect") == f"/twilio/context?attempt=2&call=CA{'1' * 32}"


@given(
    st.dictionaries(st.text(max_size=30), st.text(max_size=60), max_size=20),
    st.text(max_size=300),
)
def test_invite_parameters_are_read_without_raising(form: dict[str, str], to: str) -> None:
    headers = sip_headers(form)
    assert all(f"SipHeader_{name}" in form for name, _ in headers)
    found = returned_call(to, headers)
    assert found is None or found[0].startswith("CA")
