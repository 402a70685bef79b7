"""Values read from a stored record, coerced to the type expected or to a default.

A record is plain JSON that another version of the adapter may have written: a field of
an unexpected type reads as missing rather than failing the whole history.
"""

from __future__ import annotations

import math
from typing import Any

from adapter.observe.masking import safe_id


def as_list(value: object) -> list[Any]:
    """A JSON array, or an empty list."""
    return value if isinstance(value, list) else []


def as_dict(value: object) -> dict[str, Any]:
    """A JSON object, or an empty dict."""
    return value if isinstance(value, dict) else {}


def as_text(value: object) -> str:
    """A string made safe to show (no control characters, bounded), or ""."""
    return safe_id(value, 500) if isinstance(value, str) else ""


def as_opt_text(value: object) -> str | None:
    """A non-empty string made safe to show, or None."""
    return safe_id(value, 256) if isinstance(value, str) and value else None


def as_int(value: object, default: int) -> int:
    """A whole number (not a bool), or ``default``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default


# Epoch seconds a date can be made of: 1970 up to the end of year 9999.
_LATEST_EPOCH = 253_402_300_799.0


def as_epoch(value: object, default: float) -> float:
    """Epoch seconds between 1970 and 9999 (a date can be printed), or ``default``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    if math.isfinite(value) and 0.0 <= value <= _LATEST_EPOCH:
        return float(value)
    return default
