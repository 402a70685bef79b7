"""Values from the GenerativeAgent API made safe once, where they enter.

Whatever the API returns, what the rest of the adapter sees is fit for TwiML, SIP
headers and AMI:

- text loses the characters XML 1.0 cannot carry: C0 controls other than tab, LF
  and CR, U+FFFE and U+FFFF, and lone surrogates; everything else stays exact;
- a variable's value that is not a string is written the JSON way: numbers as JSON
  writes them, ``true``/``false``, ``null`` as an empty string, objects and lists as
  compact JSON (ASCII-only, sorted keys);
- a variable's name must match ``[A-Za-z0-9_.-]{1,64}`` (a SIP header token, a
  Twilio parameter name, and an Asterisk variable name once ``.``/``-`` become ``_``);
  other names are skipped, never repaired;
- a transfer number is dialed only if, trimmed, it is ``+`` and 8 to 15 digits.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# Characters XML 1.0 cannot carry (U+D800-U+DFFF only occur in a str as lone surrogates).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
VARIABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}", re.ASCII)
_E164 = re.compile(r"\+[0-9]{8,15}", re.ASCII)


def clean_text(text: str) -> str:
    """``text`` without the characters XML cannot carry; otherwise unchanged."""
    return _XML_INVALID.sub("", text)


def has_xml_invalid(text: str) -> bool:
    """True if ``text`` holds a character XML cannot carry."""
    return _XML_INVALID.search(text) is not None


def variable_value(value: Any) -> str:
    """A variable's value as clean text, non-strings written the JSON way.

    ValueError for what JSON cannot write (NaN, infinities, an int too long to print).
    """
    if isinstance(value, str):
        return clean_text(value)
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("a number that is not finite")
    # allow_nan=False also refuses a NaN nested in an object; ASCII output cannot
    # hold an XML-invalid character, so compact JSON needs no cleaning.
    return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)


def is_variable_name(name: object) -> bool:
    """True if ``name`` is an acceptable variable name (see the module docstring)."""
    return isinstance(name, str) and VARIABLE_NAME.fullmatch(name) is not None


def dialable_number(value: str | None) -> str | None:
    """The transfer number to dial, or None when it is not a plausible E.164 number.

    Surrounding whitespace is trimmed; nothing else is ever removed or repaired.
    """
    if not isinstance(value, str):
        return None
    number = value.strip()
    return number if _E164.fullmatch(number) else None


def fit_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 encoding fits ``max_bytes``.

    ``text`` must be encodable (no lone surrogates); a character is never split.
    """
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[: max(0, max_bytes)].decode("utf-8", "ignore")
