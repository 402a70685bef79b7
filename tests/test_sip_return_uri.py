"""Transfer ids carried in a returnURI, and read back from one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapter.sip import return_uri_for, transfer_id_in
from adapter.sip.return_uri import split_transfer_id


def test_the_transfer_id_goes_before_uri_headers_and_replaces_an_old_one() -> None:
    base = "sip:return@sbc.example.com;User-to-User=UUI-1;TRANSFER=old-1?X-A=1"
    uri = return_uri_for(base, "CA0123-2")
    assert uri == "sip:return@sbc.example.com;User-to-User=UUI-1;transfer=CA0123-2?X-A=1"
    assert transfer_id_in(uri) == "CA0123-2"
    assert transfer_id_in(f'"x" <{uri}>;tag=1') == "CA0123-2"


@pytest.mark.parametrize(
    "uri",
    [
        "sip:h",
        "sip:h;transfer=",
        "sip:h;transfer=nodash",
        "sip:h;transfer=a-0",
        "sip:h;transfer=a b-1",
        "sip:h?transfer=a-1",
        "sip:h;transfer=a-123456",
    ],
)
def test_a_missing_or_malformed_transfer_id_is_none(uri: str) -> None:
    assert transfer_id_in(uri) is None


call_ids = st.from_regex(r"[A-Za-z0-9._:-]{1,60}", fullmatch=True)


bases = st.sampled_from(["sip:r@h", "sips:h;a=1?X-Y=2"])


@given(call=call_ids, attempt=st.integers(1, 99_999), base=bases)
def test_transfer_ids_round_trip(call: str, attempt: int, base: str) -> None:
    transfer_id = f"{call}-{attempt}"
    uri = return_uri_for(base, transfer_id)
    assert transfer_id_in(uri) == transfer_id
    assert split_transfer_id(transfer_id) == (call, attempt)


@given(st.text(max_size=500))
def test_any_text_reads_without_raising(text: str) -> None:
    found = transfer_id_in(text)
    assert found is None or split_transfer_id(found) is not None
