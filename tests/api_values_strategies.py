"""What GenerativeAgent might send, for the property tests of tests/test_api_values_properties.py.

Two kinds of generators: structured hypothesis strategies (readable examples, good
shrinking, any Unicode), and ``output_from_bytes``, which builds an outputContext from one
drawn byte string. One draw is much cheaper than the dozens a structured example takes,
so the byte-built contexts carry the volume (thousands per test within seconds).
"""

from __future__ import annotations

import math
import string
import struct
from typing import Any

from hypothesis import strategies as st

NASTY = [
    "\x00", "\x01", "\x08", "\x0b", "\x1b", "\x1f", "\t", "\n", "\r", "\x7f", "\x85",
    "\ud800", "\udbff", "\udc00", "\udfff", "\ufffe", "\uffff", "\ufeff", "\u2028",
    "<", ">", "&", '"', "'", "]", ";", ",", "=", "?", "%", "+", " ", "é", "😀", "\\",
]  # fmt: skip
NAME_CHARS = string.ascii_letters + string.digits + "_.-"
# A string alphabet or a characters() strategy is drawn in one go: generation, not the
# code under test, is what costs time here.
any_char = st.characters(exclude_categories=())
text = st.one_of(st.text("".join(NASTY) + NAME_CHARS, max_size=12), st.text(any_char, max_size=12))
long_text = st.builds(
    lambda unit, count: unit * count,
    st.sampled_from(["a", "é", "😀", "a\r\n", ",;\"'"]),
    st.integers(min_value=250, max_value=1100),
)
names = st.one_of(st.text(NAME_CHARS, min_size=1, max_size=12), text)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(text, inner, max_size=2),
    max_leaves=4,
)
variables = st.dictionaries(names, st.one_of(scalars, json_values, long_text), max_size=4)
transfer_types = st.one_of(
    st.sampled_from(["AGENT", "SYSTEM", "CALLER_DISCONNECT", "agent", " System ", "AGENT\x00"]),
    text,
)
output_contexts = st.fixed_dictionaries(
    {"transferType": transfer_types},
    optional={
        "currentTaskName": st.one_of(st.none(), text),
        "transferVariables": variables,
        "referenceVariables": variables,
    },
)


# --- outputContexts built from bytes -----------------------------------------------------------

TRANSFER_TYPES = ["AGENT", "SYSTEM", "CALLER_DISCONNECT", "agent", " System ", "AGENT\x00", ""]
PALETTE = [*NASTY, *NAME_CHARS, "\u0378", "\u202e", "\U0010ffff", "\x80", "%0A", "\\n"]


class _Reader:
    """Reads a byte string as a sequence of small choices (zeros once it runs out)."""

    def __init__(self, blob: bytes) -> None:
        self.blob = blob
        self.at = 0

    def more(self) -> bool:
        return self.at < len(self.blob)

    def byte(self) -> int:
        value = self.blob[self.at] if self.more() else 0
        self.at += 1
        return value

    def chunk(self, longest: int = 15) -> bytes:
        size = self.byte() % (longest + 1)
        self.at += size
        return self.blob[self.at - size : self.at]


def text_from_bytes(chunk: bytes) -> str:
    """Each byte picks a piece of the palette."""
    return "".join(PALETTE[b % len(PALETTE)] for b in chunk)


def value_from_bytes(reader: _Reader) -> Any:
    """A JSON value: one byte picks the kind, a chunk fills it."""
    kind, rest = reader.byte() % 9, reader.chunk()
    if kind == 1:
        return int.from_bytes(rest or b"\0", "big", signed=True)
    if kind == 2 and len(rest) >= 8:
        number = struct.unpack(">d", rest[:8])[0]
        return number if math.isfinite(number) else 0.5
    if kind == 3:
        return bool(rest and rest[0] & 1)
    if kind == 4:
        return None
    if kind == 5:
        return [text_from_bytes(rest[:4]), len(rest), None]
    if kind == 6:
        return {text_from_bytes(rest[:3]): text_from_bytes(rest[3:]), "n": [True]}
    if kind == 7:  # long: around the 1,015 bytes an AMI value line holds
        return text_from_bytes(rest[:3] or b"a") * (340 + 4 * reader.byte())
    return text_from_bytes(rest)


def output_from_bytes(blob: bytes) -> dict[str, Any]:
    """An outputContext whose every part is chosen by the bytes of ``blob``."""
    reader = _Reader(blob)
    first = reader.byte()
    if first < 0xC0:
        transfer_type = TRANSFER_TYPES[first % len(TRANSFER_TYPES)]
    else:
        transfer_type = text_from_bytes(reader.chunk())
    output: dict[str, Any] = {"transferType": transfer_type}
    if reader.byte() & 1:
        output["currentTaskName"] = text_from_bytes(reader.chunk())
    while reader.more():
        choice = reader.byte()
        section = "transferVariables" if choice & 1 else "referenceVariables"
        raw_name = reader.chunk(longest=70)
        if choice < 0xE0:  # mostly names the adapter accepts, sometimes anything
            name = "".join(NAME_CHARS[b % len(NAME_CHARS)] for b in raw_name) or "v"
        else:
            name = text_from_bytes(raw_name)
        output.setdefault(section, {})[name] = value_from_bytes(reader)
    return output


output_blobs = st.binary(min_size=24, max_size=200).map(output_from_bytes)
