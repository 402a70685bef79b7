"""Reading a Refer-To and its X-GA-* parameters: exact, bounded, never raising."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapter.sip import ga_return, parse_refer_to
from adapter.sip.refer import MAX_PARAMETERS, MAX_REFER_TO

TRACES = Path("/work/shared/asterisk-sip-traces")
DOC_EXAMPLE = (
    "sip:your-sbc.example.com?X-GA-extConId=conv-12345&X-GA-transfer=SYSTEM"
    "&X-GA-tv-next_action=schedule_callback&X-GA-tv-priority=high"
    "&X-GA-rv-account_balance=1250.00&X-GA-rv-last_payment_date=2025-01-10"
)


def read(value: str):  # type: ignore[no-untyped-def]
    target = parse_refer_to(value)
    return ga_return(target.headers, truncated=target.truncated)


def test_the_documented_example_reads_back_whole() -> None:
    ga = read(DOC_EXAMPLE)
    assert ga.transfer_type == "SYSTEM"
    assert ga.conversation_id == "conv-12345"
    assert ga.transfer_variables == {"next_action": "schedule_callback", "priority": "high"}
    assert ga.reference_variables == {
        "account_balance": "1250.00",
        "last_payment_date": "2025-01-10",
    }
    assert ga.problems == ()


def test_angle_brackets_percent_encoding_and_plus() -> None:
    value = (
        '"ASAPP" <sip:sbc.example.com;transfer=CA1-2?X-GA-transfer=agent'
        "&X-GA-tv-note=a%26b%3Dc&X-GA-tv-name=Zo%C3%AB%20M%C3%BCller&X-GA-rv-plus=1%2B1"
        "&X-GA-rv-raw=1+1>;tag=ignored"
    )
    target = parse_refer_to(value)
    assert target.address == "sip:sbc.example.com"
    assert target.params == (("transfer", "CA1-2"),)
    ga = ga_return(target.headers)
    assert ga.transfer_type == "AGENT"  # the value's case does not matter
    assert ga.transfer_variables == {"note": "a&b=c", "name": "Zoë Müller"}
    assert ga.reference_variables == {"plus": "1+1", "raw": "1+1"}  # '+' is never a space


def test_prefix_case_repeats_empty_values_and_unnamed_parameters() -> None:
    ga = read(
        "sip:h?x-ga-TRANSFER=SYSTEM&X-GA-Transfer=AGENT&X-Ga-Tv-Code=&X-GA-tv-Code=2"
        "&=orphan&&X-GA-rv-bad name=1&X-GA-tv-=x&Other=1"
    )
    assert ga.transfer_type == "SYSTEM"  # the first one counts
    assert ga.transfer_variables == {"Code": ""}  # names keep their case; empty stays empty
    assert ga.reference_variables == {}
    assert any("more than once" in p for p in ga.problems)
    assert any("not valid" in p for p in ga.problems)


@pytest.mark.parametrize(
    "value",
    ["sip:h", "sip:h?X-GA-tv-a=1", "sip:h?X-GA-transfer=", "sip:h?X-GA-transfer=HUMAN", "", "<"],
)
def test_missing_or_unknown_transfer_type_is_none_with_a_problem(value: str) -> None:
    ga = read(value)
    assert ga.transfer_type is None
    assert ga.problems


def test_over_long_input_is_bounded_and_said() -> None:
    many = "&".join(f"X-GA-tv-v{n}=x" for n in range(MAX_PARAMETERS + 50))
    ga = read(f"sip:h?X-GA-transfer=AGENT&{many}")
    assert ga.transfer_type == "AGENT"
    assert len(ga.transfer_variables) == MAX_PARAMETERS - 1
    assert any("longer" in p for p in ga.problems)
    huge = read("sip:h?X-GA-transfer=SYSTEM&X-GA-tv-big=" + "y" * (3 * MAX_REFER_TO))
    assert len(huge.transfer_variables["big"]) < MAX_REFER_TO


def test_what_a_real_asterisk_passed_on_reads_as_sent() -> None:
    """The Refer-To values recorded through a real Asterisk (refer-values.json)."""
    cases = json.loads((TRACES / "refer-values.json").read_text())
    checked = 0
    for case in cases:
        got = case.get("HASH(TRANSFER_DATA,Refer-To)")
        if case.get("HASH equals sent") and got:
            assert parse_refer_to(got) == parse_refer_to(case["sent"])
            assert read(got).found == ("x-ga-" in got.lower())
            checked += 1
    assert checked >= 2


names = st.from_regex(r"[A-Za-z0-9_.-]{1,20}", fullmatch=True)
values = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)


@given(
    kind=st.sampled_from(["AGENT", "SYSTEM"]),
    tv=st.dictionaries(names, values, max_size=5),
    rv=st.dictionaries(names, values, max_size=5),
    brackets=st.booleans(),
)
def test_encoded_parameters_read_back_exactly(
    kind: str, tv: dict[str, str], rv: dict[str, str], brackets: bool
) -> None:
    pairs = [("X-GA-transfer", kind)]
    pairs += [(f"X-GA-tv-{k}", v) for k, v in tv.items()]
    pairs += [(f"X-GA-rv-{k}", v) for k, v in rv.items()]
    query = "&".join(f"{n}={quote(v, safe='')}" for n, v in pairs)
    uri = f"sip:return@sbc.example.com;transfer=CA1-1?{query}"
    ga = read(f"<{uri}>" if brackets else uri)
    assert ga.transfer_type == kind
    assert ga.transfer_variables == tv
    assert ga.reference_variables == rv
    assert ga.problems == ()


@given(st.text(max_size=3000))
def test_any_text_parses_without_raising(text: str) -> None:
    ga = read(text)
    assert ga.transfer_type in (None, "AGENT", "SYSTEM")
    for variables in (ga.transfer_variables, ga.reference_variables):
        assert all(len(name) <= 64 for name in variables)


@given(st.lists(st.tuples(st.text(max_size=30), st.text(max_size=30)), max_size=30))
def test_any_pairs_read_without_raising(pairs: list[tuple[str, str]]) -> None:
    ga = ga_return(pairs)
    assert ga.found == any(name.lower().startswith("x-ga-") for name, _ in pairs)
