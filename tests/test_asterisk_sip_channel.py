"""The SIP hand-off's channel variables: every header value reaches the dialplan whole,
in pieces that each fit one AMI line, and nothing unsafe reaches the Dial string."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from adapter.asterisk.framing import setvar_action
from adapter.asterisk.sip_channel import MAX_PIECES, dial_uri_ok, header_variables, pieces

TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=3000)


@given(TEXT, st.integers(min_value=4, max_value=1000))
def test_pieces_join_to_the_value_and_each_fits(value: str, size: int) -> None:
    parts = pieces(value, size)
    assert "".join(parts) == value
    assert all(0 < len(p.encode()) <= size for p in parts)


@given(st.lists(st.tuples(st.sampled_from(["X-GA-iv-a", "X-GA-taskName", "bad name"]), TEXT)))
def test_header_variables_fit_one_ami_line_and_join_back(headers: list[tuple[str, str]]) -> None:
    variables, problems = header_variables(headers)
    found = dict(variables)
    kept = [
        (n, v.replace("\r", " ").replace("\n", " ").replace("\x00", ""))
        for n, v in headers
        if n != "bad name" and v.replace("\x00", "")
    ]
    assert found["_GAH_COUNT"] == str(len(kept))
    for number, (name, value) in enumerate(kept, start=1):
        parts = int(found[f"_GAH_PARTS_{number}"])
        assert found[f"_GAH_NAME_{number}"] == name
        assert 1 <= parts <= MAX_PIECES
        joined = "".join(found[f"_GAH_VALUE_{number}_{k}"] for k in range(1, parts + 1))
        assert joined == value  # 3,000 characters at most here: never cut
    for variable, value in variables:
        _, cut = setvar_action("PJSIP/caller-00000001", variable, value)
        assert not cut
    assert problems.count("bad name") == sum(n == "bad name" for n, _ in headers)


def test_a_value_beyond_eight_pieces_is_cut_and_reported() -> None:
    variables, problems = header_variables([("X-GA-iv-huge", "x" * 9000)])
    assert dict(variables)["_GAH_PARTS_1"] == "8"
    assert problems == ["X-GA-iv-huge"]


def test_only_plain_sip_uris_reach_the_dial_string() -> None:
    assert dial_uri_ok("sip:genagent@sip.asapp.example:5061;transport=tls")
    assert dial_uri_ok("sips:ga@10.0.0.1")
    for bad in ("tel:+1555", "sip:a,b@x", "sip:a&PJSIP/evil", "sip:a)b", "sip:a b", "", "sip:"):
        assert not dial_uri_ok(bad), bad
