"""Values from the GenerativeAgent API made safe once, where they enter."""

from __future__ import annotations

import re

_E164 = re.compile(r"\+[0-9]{8,15}")


def dialable_number(value: str | None) -> str | None:
    """``value`` trimmed if it is a plausible E.164 number (+ then 8-15 digits), else None.

    Never repaired by dropping characters: a number with anything else in it is not dialed.
    """
    if value is None:
        return None
    number = value.strip()
    return number if _E164.fullmatch(number) else None
