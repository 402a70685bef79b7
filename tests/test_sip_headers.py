"""The headers a SIP hand-off sends, fitted in a budget and carried in a SIP URI."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from adapter.sip import (
    CALL_TRANSFER_ID_HEADER,
    api_headers,
    fit_headers,
    ga_headers,
    parse_refer_to,
    sip_uri_with_headers,
    uri_header_cost,
)
from adapter.sip.headers import TWILIO_HEADER_BUDGET


def test_api_mode_sends_the_transfer_id() -> None:
    assert api_headers("CA1-2") == ((CALL_TRANSFER_ID_HEADER, "CA1-2"),)


def test_headers_mode_sends_the_context_fixed_headers_first() -> None:
    headers = ga_headers("billing", "conv-1", "cust-9", {"name": "Zoë", "bad name": "x", "n": ""})
    assert headers == (
        ("X-GA-taskName", "billing"),
        ("X-GA-extConversationId", "conv-1"),
        ("X-GA-customerId", "cust-9"),
        ("X-GA-iv-name", "Zoë"),
        ("X-GA-iv-n", ""),
    )
    assert ga_headers(None, "c\r\nX-Evil: 1", None, {}) == (
        ("X-GA-extConversationId", "cX-Evil: 1"),
    )


def test_the_first_header_over_budget_and_all_after_it_are_dropped() -> None:
    headers = [("X-GA-iv-a", "1" * 10), ("X-GA-iv-b", "2" * 50), ("X-GA-iv-c", "3")]
    fitted = fit_headers(headers, budget=40)
    assert fitted.kept == (("X-GA-iv-a", "1" * 10),)
    assert fitted.dropped == ("X-GA-iv-b", "X-GA-iv-c")  # c would fit: ASAPP's rule, in order


def test_a_uri_with_headers_reads_back_through_the_refer_to_parser() -> None:
    uri = sip_uri_with_headers("sip:ga@asapp.example.com", [("X-GA-iv-note", "a&b=c +?%")])
    assert uri == "sip:ga@asapp.example.com?X-GA-iv-note=a%26b%3Dc%20%2B%3F%25"
    assert parse_refer_to(uri).headers == (("X-GA-iv-note", "a&b=c +?%"),)
    assert sip_uri_with_headers("sip:x@y", []) == "sip:x@y"


names = st.from_regex(r"[A-Za-z0-9_.-]{1,30}", fullmatch=True)
values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)


@given(
    variables=st.dictionaries(names, values, max_size=30),
    budget=st.integers(min_value=0, max_value=2 * TWILIO_HEADER_BUDGET),
)
def test_fitted_headers_stay_in_budget_and_read_back(
    variables: dict[str, str], budget: int
) -> None:
    headers = ga_headers("task", "conv-1", None, variables)
    fitted = fit_headers(headers, budget)
    assert fitted.size <= budget
    assert [n for n, _ in fitted.kept] + list(fitted.dropped) == [n for n, _ in headers]
    assert fitted.kept == headers[: len(fitted.kept)]
    uri = sip_uri_with_headers("sip:ga@asapp.example.com", fitted.kept)
    assert len(uri) - len("sip:ga@asapp.example.com") == fitted.size
    assert sum(uri_header_cost(n, v) for n, v in fitted.kept) == fitted.size
    assert list(parse_refer_to(uri).headers) == list(fitted.kept)
