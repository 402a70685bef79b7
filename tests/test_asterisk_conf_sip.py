"""extensions_genagent_sip.conf and pjsip_genagent.conf read as Asterisk config, and keep
the worker's contract for the SIP transfer modes (the recorded rules of
asterisk-sip-traces/: headers only from a pre-dial handler, REFER into TRANSFER_CONTEXT,
the Refer-To kept through GET_TRANSFERRER_DATA, refer_blind_progress = no)."""

from __future__ import annotations

import pytest

from adapter.asterisk.sip_channel import SIP_CONTEXTS
from tests.fake_ami.dialplan import (
    CORE_CONF,
    REPO_CONF_DIR,
    ROUTES_CONF,
    SIP_CONF,
    Dialplan,
    Step,
    parse_extensions,
    strip_comment,
)
from tests.fake_ami.sip import exten_exists
from tests.test_asterisk_conf import all_steps, goto_targets, variables

SIP = parse_extensions(SIP_CONF.read_text(), SIP_CONF.name)
DIALPLAN = Dialplan(
    [parse_extensions(p.read_text(), p.name) for p in (CORE_CONF, SIP_CONF, ROUTES_CONF)]
)
PJSIP_CONF = REPO_CONF_DIR / "pjsip_genagent.conf"
HOLDS = ("genagent-sip-dial", "genagent-sip-referred", "genagent-sip-inbound")


def steps(context: str, exten: str = "s") -> list[Step]:
    return DIALPLAN.contexts[context].extensions[exten]


def resolve(context: str, exten: str, priority: str) -> Step:
    """The step a jump lands on, in the whole dialplan; fails the test if there is none."""
    for step in steps(context, exten):
        if priority in (str(step.priority), step.label):
            return step
    raise AssertionError(f"no {context},{exten},{priority}")


def next_step(step: Step) -> Step:
    return resolve(step.context, step.exten, str(step.priority + 1))


def pjsip_sections() -> list[tuple[str, dict[str, list[str]]]]:
    """pjsip.conf-style text: sections in order (names repeat, one per type)."""
    sections: list[tuple[str, dict[str, list[str]]]] = []
    for raw in PJSIP_CONF.read_text().splitlines():
        line = strip_comment(raw)
        if line.startswith("["):
            sections.append((line.strip("[]"), {}))
        elif line:
            key, _, value = line.partition("=")
            sections[-1][1].setdefault(key.strip(), []).append(value.strip())
    return sections


def test_the_sip_file_holds_exactly_the_contexts_the_worker_knows() -> None:
    assert list(SIP.contexts) == list(SIP_CONTEXTS)
    for step in all_steps(SIP):
        for target in goto_targets(step):
            assert "${" not in "".join(target)
            resolve(*target)


@pytest.mark.parametrize("context", HOLDS)
def test_every_sip_hold_is_bounded_and_ends_in_the_fallback(context: str) -> None:
    hold = steps(context)
    (moh,) = [s for s in hold if s.app == "MusicOnHold"]
    assert moh.data == "${GA_MOH_CLASS},${GA_HOLD_LEFT}"
    deadline = next(s for s in hold if s.data.startswith("GA_HOLD_DEADLINE="))
    assert "0${FILTER(0-9,${GA_RETURN_TIMEOUT})}" in deadline.data
    guard = resolve(context, "s", str(moh.priority - 1))
    ((_, _, label),) = goto_targets(guard)
    timeout = resolve(context, "s", label)
    assert timeout.data == "GA_FALLBACK_REASON=return-timeout"
    assert goto_targets(next_step(timeout)) == [("genagent-fallback", "s", "1")]
    assert [s.app for s in steps(context, "h")] == ["NoOp"]


def test_user_events_carry_no_caller_data() -> None:
    events = {s.data.split(",")[0]: s for s in all_steps(SIP) if s.app == "UserEvent"}
    assert set(events) == {
        "GenerativeAgentReturned",
        "GenerativeAgentReferred",
        "GenerativeAgentInviteReturn",
    }
    allowed = {"DIALSTATUS", "GA_TRANSFER_ID", "GA_RETURN_TIMEOUT", "GA_REFER_TO_PARTS"}
    for step in events.values():
        assert variables(step.data) <= allowed, step.data


def test_dial_keeps_the_refer_to_and_adds_headers_only_in_the_pre_dial_handler() -> None:
    dial = steps("genagent-sip-dial")
    (call,) = [s for s in dial if s.app == "Dial"]
    target, timeout, options = call.data.split(",")
    assert target == "PJSIP/${GA_SIP_ENDPOINT}/${GA_SIP_URI}"
    assert timeout == "${GA_DIAL_SECONDS}"
    assert options == "gb(genagent-sip-predial^s^1)"
    keep = next(s for s in dial if s.data.startswith("GET_TRANSFERRER_DATA="))
    assert keep.priority < call.priority
    assert next_step(call).label == "returned"
    header_sets = [s for s in all_steps(SIP) if s.data.startswith("PJSIP_HEADER(add")]
    assert {s.context for s in header_sets} == {"genagent-sip-header"}
    predial = steps("genagent-sip-predial")
    assert predial[0].data == "TRANSFER_CONTEXT=genagent-sip-refer"
    assert predial[-1].app == "Return"


@pytest.mark.parametrize("user", ["s", "genagent-return", "a", "+15551230000", "x.y_z"])
def test_a_refer_or_invite_to_any_plain_user_part_lands(user: str) -> None:
    for context in ("genagent-sip-refer", "genagent-sip-inbound"):
        assert exten_exists(DIALPLAN, context, user)


def test_the_pjsip_endpoint_is_what_asapp_needs_and_marks_what_to_fill_in() -> None:
    sections = pjsip_sections()
    by_type = {values["type"][0]: (name, values) for name, values in sections}
    name, endpoint = by_type["endpoint"]
    assert name == DIALPLAN.globals["GA_SIP_ENDPOINT"]
    assert endpoint["refer_blind_progress"] == ["no"]
    assert endpoint["allow_transfer"] == ["yes"]
    assert endpoint["context"] == ["genagent-sip-inbound"]
    assert "transport" not in endpoint  # left to the admin
    assert by_type["identify"][1]["endpoint"] == [name]
    assert by_type["aor"][0] == endpoint["aors"][0]
    assert {n for n, v in sections if v["type"] == ["auth"]} == {
        endpoint["outbound_auth"][0],
        endpoint["auth"][0],
    }
    text = PJSIP_CONF.read_text()
    for line in text.splitlines():
        if "example.invalid" in line or "CHANGE-ME" in line or "192.0.2." in line:
            assert "FILL IN" in line, line


def test_readme_documents_the_sip_set_up() -> None:
    readme = (REPO_CONF_DIR / "README.md").read_text()
    for text in (
        "#include extensions_genagent_sip.conf",
        "#include pjsip_genagent.conf",
        "refer_blind_progress",
        "GA_TRANSFER_MODE",
        "GenerativeAgentReferred",
        "GenerativeAgentInviteReturn",
        "genagent-sip-dial,s,1",
        "returnURI",
    ):
        assert text in readme, text
