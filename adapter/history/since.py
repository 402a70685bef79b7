"""``--since`` values: a span back from now (``15m``, ``2h``, ``1d``) or an ISO timestamp."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_SPAN = re.compile(r"(\d{1,9})([smhdw])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_since(text: str, now: float) -> float:
    """The epoch second ``text`` names, relative to ``now``; ValueError if it names none.

    A timestamp without a zone is taken as UTC.
    """
    value = text.strip()
    span = _SPAN.fullmatch(value.lower())
    if span:
        return now - int(span.group(1)) * _SECONDS[span.group(2)]
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ValueError(
            f"--since {value[:40]!r}: use a span such as 15m, 2h, 1d or an ISO timestamp"
            " such as 2026-12-01T09:30:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
