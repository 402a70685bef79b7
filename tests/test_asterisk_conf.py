"""The asterisk_conf/ files read as Asterisk config, and keep the worker's contract.

They are parsed with the small reader in tests/fake_ami/dialplan.py (the one the fake AMI
server takes its dialplan from), which rejects any line it does not understand.
"""

from __future__ import annotations

import re

import pytest

from tests.fake_ami.dialplan import (
    CORE_CONF,
    MANAGER_CONF,
    REPO_CONF_DIR,
    ROUTES_CONF,
    ConfError,
    ConfFile,
    Dialplan,
    Step,
    parse_extensions,
    parse_manager,
)

CORE = parse_extensions(CORE_CONF.read_text(), CORE_CONF.name)
ROUTES = parse_extensions(ROUTES_CONF.read_text(), ROUTES_CONF.name)
DIALPLAN = Dialplan([CORE, ROUTES])
HANDOFF, DIAL = "genagent-handoff", "genagent-dial"
ROUTE_CONTEXTS = ("genagent-agent", "genagent-system", "genagent-fallback")
SAFETY_TIMEOUTS = {HANDOFF: "GA_HANDOFF_TIMEOUT", DIAL: "GA_RETURN_TIMEOUT"}
# Where the worker Redirects (and the IVR's Goto): context, exten, priority.
ENTRY_POINTS = [(HANDOFF, "s", "1"), (DIAL, "s", "1")] + [(c, "s", "1") for c in ROUTE_CONTEXTS]


def steps(conf: ConfFile | Dialplan, context: str, exten: str = "s") -> list[Step]:
    return conf.contexts[context].extensions[exten]


def all_steps(conf: ConfFile | Dialplan) -> list[Step]:
    return [s for c in conf.contexts.values() for ext in c.extensions.values() for s in ext]


def variables(text: str) -> set[str]:
    """The variable names read with ${...} in some dialplan text (functions excluded)."""
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))


def goto_targets(step: Step) -> list[tuple[str, str, str]]:
    """(context, exten, priority or label) of every jump a Goto/GotoIf step can make."""
    if step.app == "Goto":
        branches = [step.data]
    elif step.app == "GotoIf":
        _condition, _, branches_text = step.data.rpartition("?")
        branches = [b for b in branches_text.split(":") if b]
    else:
        return []
    targets = []
    for branch in branches:
        parts = [p.strip() for p in branch.split(",")]
        context, exten, priority = [step.context, step.exten][: 3 - len(parts)] + parts
        targets.append((context, exten, priority))
    return targets


def resolve(context: str, exten: str, priority: str) -> Step:
    """The step a jump lands on; fails the test if there is none."""
    for step in steps(DIALPLAN, context, exten):
        if priority in (str(step.priority), step.label):
            return step
    raise AssertionError(f"no {context},{exten},{priority}")


def next_step(step: Step) -> Step:
    return resolve(step.context, step.exten, str(step.priority + 1))


# --------------------------------------------------------------------------- as config files


def test_the_files_parse_as_asterisk_config() -> None:
    assert CORE.sections == ["globals", HANDOFF, DIAL]
    assert ROUTES.sections == list(ROUTE_CONTEXTS)
    assert set(parse_manager(MANAGER_CONF.read_text())) == {"genagent-adapter"}


@pytest.mark.parametrize(
    "text",
    [
        "exten => s,1,NoOp()",  # outside any section
        "[ctx]\nsame => n,NoOp()",  # same without exten
        "[ctx]\nexten => s,n,NoOp()",  # n before any numbered priority
        "[ctx]\nswitch => Realtime",  # unsupported keyword
        "[ctx]\nexten => s,1,NoOp(",  # unbalanced
        "[globals]\nNO_EQUALS",
    ],
)
def test_the_reader_rejects_what_it_does_not_understand(text: str) -> None:
    with pytest.raises(ConfError):
        parse_extensions(text)


def test_the_reader_handles_comments_labels_and_includes() -> None:
    conf = parse_extensions(
        "[a] ; comment\ninclude => b\nexten => s,1(top),Set(X=a\\;b) ; c\n same => n(x),Goto(top)\n"
    )
    first, second = steps(conf, "a")
    assert (first.label, first.app, first.data) == ("top", "Set", "X=a\\;b")
    assert (second.priority, second.label, second.kind) == (2, "x", "same")
    assert conf.contexts["a"].includes == ["b"]


def test_every_extension_starts_at_priority_1_and_continues_with_same() -> None:
    for step in all_steps(DIALPLAN):
        where = f"{step.source}:{step.line}"
        if step.kind == "exten":
            assert step.raw_priority == "1", where
        else:
            assert re.fullmatch(r"n(\([a-z]+\))?", step.raw_priority), where
    for context in DIALPLAN.contexts.values():
        for exten, ext_steps in context.extensions.items():
            assert ext_steps[0].kind == "exten", (context.name, exten)
            assert [s.priority for s in ext_steps] == list(range(1, len(ext_steps) + 1))


# --------------------------------------------------------------------------- contexts


def test_core_contexts_in_the_core_file_and_routes_only_in_the_routes_file() -> None:
    assert set(CORE.contexts) == {HANDOFF, DIAL}
    assert set(ROUTES.contexts) == set(ROUTE_CONTEXTS)
    assert not set(ROUTE_CONTEXTS) & set(CORE.contexts)


@pytest.mark.parametrize(("context", "exten", "priority"), ENTRY_POINTS)
def test_every_entry_point_exists(context: str, exten: str, priority: str) -> None:
    assert resolve(context, exten, priority).priority == 1


def test_every_goto_target_exists() -> None:
    jumps = [(s, t) for s in all_steps(DIALPLAN) for t in goto_targets(s)]
    assert len(jumps) >= 8
    for step, target in jumps:
        assert "${" not in "".join(target), f"{step.source}:{step.line}: computed target"
        resolve(*target)


def test_the_caller_hanging_up_strands_nothing() -> None:
    for context in (HANDOFF, DIAL):
        hangup = steps(CORE, context, "h")
        assert [s.app for s in hangup] == ["NoOp"], context


def test_core_contexts_run_only_bounded_applications() -> None:
    allowed = {"NoOp", "Answer", "Set", "UserEvent", "GotoIf", "Goto", "MusicOnHold", "Wait"}
    for step in all_steps(CORE):
        assert step.app in allowed | {"Dial"}, f"{step.source}:{step.line}: {step.app}"
        if step.app == "Wait":
            assert step.data == "1"


# --------------------------------------------------------------------------- globals


def test_defaults_are_globals_and_never_shadowed_by_channel_variables() -> None:
    defaults = CORE.globals
    assert defaults["GA_DIAL_PREFIX"] == "PJSIP/"
    assert defaults["GA_DIAL_SUFFIX"] == "@pstn"
    assert int(defaults["GA_DIAL_TIMEOUT"]) > 0
    assert int(defaults["GA_HANDOFF_TIMEOUT"]) >= 30
    assert int(defaults["GA_RETURN_TIMEOUT"]) >= 30
    assert "GA_MOH_CLASS" in defaults
    assigned = {s.data.partition("=")[0] for s in all_steps(DIALPLAN) if s.app == "Set"}
    assert not assigned & set(defaults)


# --------------------------------------------------------------------------- the hand-off


def test_handoff_clears_then_tells_the_adapter_without_caller_data() -> None:
    handoff = steps(CORE, HANDOFF)
    events = [s for s in handoff if s.app == "UserEvent"]
    assert len(events) == 1
    assert events[0].data.split(",")[0] == "GenerativeAgentTransfer"
    # The hand-off counter is no caller data: it names the hand-off for the adapter.
    assert variables(events[0].data) == {"GA_HANDOFF_TIMEOUT", "GA_HANDOFF_SEQ"}
    counted = [s for s in handoff if s.app == "Set" and s.data.startswith("GA_HANDOFF_SEQ=")]
    assert len(counted) == 1
    assert counted[0].priority < events[0].priority
    cleared = {s.data for s in handoff if s.app == "Set" and s.priority < events[0].priority}
    for name in (
        "GA_TRANSFER_NUMBER",
        "GA_TRANSFER_ID",
        "GA_TRANSFER_TYPE",
        "GA_CURRENT_TASK",
        "GA_FALLBACK_REASON",
    ):
        assert f"{name}=" in cleared
    assert "GA_TASK" in variables(handoff[0].data)  # logged, never sent in the event


def test_returned_event_carries_the_dial_status_and_no_caller_data() -> None:
    event = next(s for s in steps(CORE, DIAL) if s.app == "UserEvent")
    name, *body = event.data.split(",")
    assert name == "GenerativeAgentReturned"
    assert body[0] == "DialStatus: ${DIALSTATUS}"
    assert variables(event.data) == {"DIALSTATUS", "GA_TRANSFER_ID", "GA_RETURN_TIMEOUT"}
    assert resolve(DIAL, "s", "returned").priority == event.priority - 1


# --------------------------------------------------------------------------- the dial


def test_dial_uses_the_trunk_globals_the_timeout_global_and_option_g() -> None:
    dial_steps = steps(CORE, DIAL)
    (dial,) = [s for s in dial_steps if s.app == "Dial"]
    target, timeout, options = dial.data.split(",")
    assert target == "${GA_DIAL_PREFIX}${GA_DIAL_NUMBER}${GA_DIAL_SUFFIX}"
    assert "g" in options
    sets = {
        s.data.partition("=")[0]: s.data.partition("=")[2] for s in dial_steps if s.app == "Set"
    }
    assert timeout == "${GA_DIAL_SECONDS}"
    assert "${GA_DIAL_TIMEOUT}" in sets["GA_DIAL_SECONDS"]
    assert "${GA_TRANSFER_NUMBER}" in sets["GA_DIAL_NUMBER"]
    assert "FILTER(0-9+," in sets["GA_DIAL_NUMBER"]
    # A refused number or timeout skips the Dial and still reports a DialStatus.
    invalid = resolve(DIAL, "s", "invalid")
    assert invalid.data == "DIALSTATUS=INVALIDARGS"
    assert goto_targets(next_step(invalid)) == [(DIAL, "s", "returned")]
    guards = [s for s in dial_steps if s.app == "GotoIf" and s.priority < dial.priority]
    assert all(goto_targets(g) == [(DIAL, "s", "invalid")] for g in guards)
    assert len(guards) == 2
    # Whatever DIALSTATUS (CHANUNAVAIL too), the dialplan goes on to "returned".
    assert next_step(dial).label == "returned"


# --------------------------------------------------------------------------- the holds


@pytest.mark.parametrize("context", [HANDOFF, DIAL])
def test_every_hold_is_bounded_by_a_safety_timeout_and_ends_in_the_fallback(context: str) -> None:
    hold_steps = steps(CORE, context)
    (moh,) = [s for s in hold_steps if s.app == "MusicOnHold"]
    sets = {
        s.data.partition("=")[0]: s.data.partition("=")[2] for s in hold_steps if s.app == "Set"
    }
    # The duration is what is left until a deadline computed from the safety timeout.
    assert moh.data == "${GA_MOH_CLASS},${GA_HOLD_LEFT}"
    assert variables(sets["GA_HOLD_LEFT"]) == {"GA_HOLD_DEADLINE", "EPOCH"}
    deadline = sets["GA_HOLD_DEADLINE"]
    assert f"0${{FILTER(0-9,${{{SAFETY_TIMEOUTS[context]}}})}}" in deadline
    # Right before the music: nothing left (or a bad value) goes to the timeout branch.
    guard = resolve(context, "s", str(moh.priority - 1))
    assert guard.app == "GotoIf"
    assert guard.data.startswith("$[${GA_HOLD_LEFT} > 0]?:")
    # After the music, the loop goes back to recompute what is left.
    after = next_step(moh)
    assert after.app == "Wait"
    assert goto_targets(next_step(after)) == [(context, "s", "hold")]
    assert resolve(context, "s", "hold").data.startswith("GA_HOLD_LEFT=")
    # The timeout branch records why, then leaves for genagent-fallback.
    ((_, _, label),) = goto_targets(guard)
    timeout = resolve(context, "s", label)
    assert timeout.data.startswith("GA_FALLBACK_REASON=")
    assert goto_targets(next_step(timeout)) == [("genagent-fallback", "s", "1")]


# --------------------------------------------------------------------------- routes, manager


def test_route_contexts_document_the_variables_they_receive() -> None:
    text = ROUTES_CONF.read_text()
    for name in (
        "GA_TRANSFER_TYPE",
        "GA_CURRENT_TASK",
        "GA_TV_<name>",
        "GA_RV_<name>",
        "GA_TRANSFER_ID",
        "GA_FALLBACK_REASON",
    ):
        assert name in text
    for context in ROUTE_CONTEXTS:
        assert "GA_TRANSFER_ID" in variables(steps(ROUTES, context)[0].data)


def test_manager_user_has_least_privilege() -> None:
    user = parse_manager(MANAGER_CONF.read_text())["genagent-adapter"]
    assert set(user["read"].split(",")) == {"call", "user", "system"}
    write = set(user["write"].split(","))
    assert write == {"call", "reporting"}  # reporting: CoreShowChannels and ShowDialPlan
    assert user["deny"] == "0.0.0.0/0.0.0.0"
    assert user["permit"]


def test_readme_documents_the_contract() -> None:
    readme = (REPO_CONF_DIR / "README.md").read_text()
    for text in (
        "#include extensions_genagent.conf",
        "#include extensions_genagent_routes.conf",
        "#include manager_genagent.conf",
        "dialplan reload",
        "manager reload",
        "Goto(genagent-handoff,s,1)",
        "GenerativeAgentTransfer",
        "GenerativeAgentReturned",
        "genagent-dial,s,1",
        "ShowDialPlan",
        *ROUTE_CONTEXTS,
        *CORE.globals,
    ):
        assert text in readme, text
