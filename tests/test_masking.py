"""Masking: caller data hidden, ids and names untouched, whatever the input."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from adapter.observe.masking import (
    MASK,
    mask_number,
    mask_text,
    mask_url,
    mask_value,
    mask_variables,
    safe_id,
)


def test_numbers_keep_only_their_last_two_digits() -> None:
    assert mask_number("+14155550123") == MASK + "23"
    assert mask_number("sip:+14155550123@pbx.example") == MASK + "23"
    assert mask_number("123") == MASK
    assert mask_number(None) == ""


def test_variables_keep_names_and_hide_values() -> None:
    assert mask_variables({"accountNumber": "12345678", "empty": ""}) == {
        "accountNumber": f"{MASK}(8)",
        "empty": "",
    }
    assert mask_value(None) == ""


def test_free_text_masks_numbers_but_not_call_or_transfer_ids() -> None:
    text = "call CA0123456789abcdef0123456789abcdef, 1700000000.12-3 dialed +1 (415) 555-0123"
    masked = mask_text(text)
    assert "CA0123456789abcdef0123456789abcdef" in masked
    assert "1700000000.12-3" in masked
    assert "555" not in masked
    assert masked.endswith(MASK + "23")


def test_urls_keep_scheme_host_and_path_only() -> None:
    masked = mask_url("https://user:pw@adapter.example:8443/twilio/voice?task=t&iv_x=secret#f")
    assert masked == f"https://{MASK}@adapter.example:8443/twilio/voice?task={MASK}&iv_x={MASK}"


@given(st.text())
def test_ids_fit_for_a_log_line_never_break_it(value: str) -> None:
    cleaned = safe_id(value)
    assert "\n" not in cleaned
    assert "\r" not in cleaned
    assert len(cleaned) <= 128


@given(
    st.from_regex(r"\+[1-9]\d{7,14}", fullmatch=True),
    st.text(alphabet="ab:, ", max_size=5),
    st.text(alphabet="ab:, ", max_size=5),
)
def test_an_e164_number_in_text_is_always_masked(number: str, before: str, after: str) -> None:
    masked = mask_text(f"{before} {number} {after}")
    assert number[1:-2] not in masked
    assert MASK + number[-2:] in masked
