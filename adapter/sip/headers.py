"""The headers a SIP hand-off carries to GenerativeAgent, and fitting them in a budget.

API mode sends one header, ``X-ASAPP-CallTransferId``. Headers mode sends the context
itself: ``X-GA-taskName``, ``X-GA-extConversationId``, ``X-GA-customerId`` and one
``X-GA-iv-<name>`` per input variable. A front has a budget (Twilio: 1,024 characters
of custom headers, carried as SIP URI headers): headers are kept in order until one
does not fit, and that one and every later one are dropped, the way ASAPP fills its own
Refer-To. The fixed headers come first, so only input variables are ever dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from adapter.genagent.values import is_variable_name

CALL_TRANSFER_ID_HEADER = "X-ASAPP-CallTransferId"
TWILIO_HEADER_BUDGET = 1024

Header = tuple[str, str]
# A header value is one line: no control characters at all (CR/LF would split it).
_CONTROL = re.compile("[\x00-\x1f\x7f]")
# Characters RFC 3261 allows unescaped in a URI header value, minus '+' and '?', which
# some parsers read as a space or a query: those are escaped too.
_HVALUE_SAFE = "-_.!~*'()[]/:$"


def _value(text: str) -> str:
    return _CONTROL.sub("", text)


def api_headers(transfer_id: str) -> tuple[Header, ...]:
    """API mode: the call transfer's id."""
    return ((CALL_TRANSFER_ID_HEADER, _value(transfer_id)),)


def ga_headers(
    task_name: str | None,
    conversation_id: str,
    customer_id: str | None,
    input_variables: Mapping[str, str],
) -> tuple[Header, ...]:
    """Headers mode: the context as X-GA-* headers (names that are not a header token
    are skipped, never repaired)."""
    headers: list[Header] = []
    if task_name:
        headers.append(("X-GA-taskName", _value(task_name)))
    headers.append(("X-GA-extConversationId", _value(conversation_id)))
    if customer_id:
        headers.append(("X-GA-customerId", _value(customer_id)))
    headers += [
        (f"X-GA-iv-{name}", _value(value))
        for name, value in input_variables.items()
        if is_variable_name(name)
    ]
    return tuple(headers)


@dataclass(frozen=True, slots=True)
class FittedHeaders:
    """The headers that fit a budget, and the names of those dropped."""

    kept: tuple[Header, ...]
    dropped: tuple[str, ...]
    size: int


def uri_header_cost(name: str, value: str) -> int:
    """Characters ``name=value`` takes in a SIP URI's headers, with its ``&``/``?``."""
    return len(_uri_header(name, value)) + 1


def fit_headers(
    headers: Iterable[Header],
    budget: int,
    cost: Callable[[str, str], int] = uri_header_cost,
) -> FittedHeaders:
    """Keep ``headers`` in order while their total ``cost`` fits ``budget``; the first
    that does not fit and all after it are dropped."""
    kept: list[Header] = []
    dropped: list[str] = []
    used = 0
    for name, value in headers:
        size = cost(name, value)
        if dropped or used + size > budget:
            dropped.append(name)
            continue
        kept.append((name, value))
        used += size
    return FittedHeaders(tuple(kept), tuple(dropped), used)


def sip_uri_with_headers(uri: str, headers: Sequence[Header]) -> str:
    """``uri`` with ``headers`` as URI headers (``?name=value&...``), values escaped."""
    if not headers:
        return uri
    joined = "&".join(_uri_header(name, value) for name, value in headers)
    return f"{uri}{'&' if '?' in uri else '?'}{joined}"


def _uri_header(name: str, value: str) -> str:
    return f"{quote(name, safe='-_.!~*()')}={quote(value, safe=_HVALUE_SAFE)}"
