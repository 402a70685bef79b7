"""Masking of caller data for every place an operator looks: logs, metrics, CLI, JSON, pages.

Phone numbers keep their last two digits (enough to tell two calls apart), caller and
agent variable values keep only their length, secrets nothing. Masking never alters
call ids, transfer ids or variable names: those are what an operator searches for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Something that looks like a phone number inside free text: + and 7 or more digits,
# or a run of 7 or more digits, possibly with spaces, brackets or dashes.
# Dots are not separators here: an Asterisk Uniqueid (1700000000.12) is an id, not a number.
_NUMBER_IN_TEXT = re.compile(r"(?<![\w.-])\+?\d[\d ()-]{5,}\d(?![\w.-])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def mask_number(number: str | None) -> str:
    """A phone number or SIP/client address with all but its last two digits hidden."""
    if not number:
        return ""
    digits = [ch for ch in number if ch.isdigit()]
    return MASK + "".join(digits[-2:]) if len(digits) > 4 else MASK


def mask_value(value: object) -> str:
    """A caller or agent variable's value: only its length is shown."""
    text = "" if value is None else str(value)
    return f"{MASK}({len(text)})" if text else ""


def mask_variables(variables: Mapping[str, object] | None) -> dict[str, str]:
    """Variable names kept, values masked."""
    return {str(name): mask_value(value) for name, value in (variables or {}).items()}


def mask_text(text: str) -> str:
    """Free text (an error message, a reason) with anything that looks like a phone
    number masked and control characters (a forged log line) replaced by spaces."""
    return _NUMBER_IN_TEXT.sub(lambda m: mask_number(m.group(0)), _CONTROL.sub(" ", text))


def safe_id(value: str, limit: int = 128) -> str:
    """An id taken from a request, fit for a log line: no line breaks or control
    characters (they would forge log lines), bounded length; otherwise unchanged."""
    return _CONTROL.sub("?", value[:limit])


def mask_url(url: str) -> str:
    """A URL with scheme, host and path kept and every query value masked."""
    parts = urlsplit(url)
    query = [(name, MASK) for name, _ in parse_qsl(parts.query, keep_blank_values=True)]
    masked = parts._replace(query=urlencode(query, safe="*"), fragment="")
    if masked.username or masked.password:
        host = masked.hostname or ""
        netloc = f"{MASK}@{host}" + (f":{masked.port}" if masked.port else "")
        masked = masked._replace(netloc=netloc)
    return safe_id(urlunsplit(masked), 2048)


def mask_name(name: object, limit: int = 40) -> str:
    """A name taken from outside (a variable's), fit for a log line: bounded, quoted,
    non-ASCII and control characters escaped, phone-number-like runs masked."""
    text = name if isinstance(name, str) else type(name).__name__
    shown = ascii(text[:limit]) + ("..." if len(text) > limit else "")
    return mask_text(shown)
