"""Reading what GenerativeAgent sends back: a Refer-To URI and its X-GA-* parameters.

A Refer-To is ``sip:host;param=value?X-GA-transfer=SYSTEM&X-GA-tv-name=...``, bare or
in ``<>`` (then anything after ``>`` is a header parameter and ignored). Rules, chosen
to read exactly what ASAPP writes and nothing more:

- names and values are percent-decoded as UTF-8 (an invalid sequence becomes U+FFFD);
  a raw ``+`` is a plus sign, as in any SIP URI (RFC 3261), never a space;
- the ``X-GA-`` prefix and the fixed names (``transfer``, ``extConId``, ``tv-``,
  ``rv-``) match in any case; a variable's own name keeps its case and must be a valid
  variable name, else it is skipped;
- a parameter given twice keeps its first value (ASAPP adds each once: a second one is
  noted as a problem); an empty value is an empty string; a parameter without a name
  is skipped;
- input is bounded (``MAX_REFER_TO`` characters, ``MAX_PARAMETERS`` parameters): the
  rest is ignored and noted. Nothing here raises.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote

from adapter.genagent.values import clean_text, is_variable_name

MAX_REFER_TO = 8192
MAX_PARAMETERS = 256
_KINDS = ("AGENT", "SYSTEM")


@dataclass(frozen=True, slots=True)
class ReferTo:
    """A Refer-To split into its address, URI parameters and URI headers (decoded)."""

    address: str  # scheme:user@host:port, as sent
    params: tuple[tuple[str, str], ...] = ()  # names in lower case
    headers: tuple[tuple[str, str], ...] = ()  # names as sent
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class GaReturn:
    """GenerativeAgent's result as X-GA-* parameters."""

    transfer_type: str | None = None  # AGENT or SYSTEM; None when missing or unknown
    conversation_id: str | None = None
    transfer_variables: dict[str, str] = field(default_factory=dict)
    reference_variables: dict[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    found: bool = False  # any X-GA-* parameter was present


def _decode(text: str) -> str:
    return clean_text(unquote(text, encoding="utf-8", errors="replace"))


def parse_refer_to(value: str) -> ReferTo:
    """Split a Refer-To header value; never raises (anything unreadable is left out)."""
    if not isinstance(value, str):
        return ReferTo(address="", truncated=True)
    truncated = len(value) > MAX_REFER_TO
    text = value[:MAX_REFER_TO].strip()
    if "<" in text:
        text = text.split("<", 1)[1].split(">", 1)[0]
    address_part, _, header_part = text.partition("?")
    address, *param_parts = address_part.split(";")
    params: list[tuple[str, str]] = []
    for part in param_parts:
        name, _, raw = part.partition("=")
        if name.strip() and len(params) < MAX_PARAMETERS:
            params.append((_decode(name.strip()).lower(), _decode(raw.strip())))
    headers: list[tuple[str, str]] = []
    for part in header_part.split("&") if header_part else ():
        name, _, raw = part.partition("=")
        if not name.strip():
            continue
        if len(headers) >= MAX_PARAMETERS:
            truncated = True
            break
        headers.append((_decode(name.strip()), _decode(raw)))
    return ReferTo(address.strip(), tuple(params), tuple(headers), truncated)


def ga_return(pairs: Iterable[tuple[str, str]], *, truncated: bool = False) -> GaReturn:
    """GenerativeAgent's result from (name, value) pairs: a Refer-To's headers, or the
    X-GA-* headers of an INVITE."""
    kind: str | None = None
    conversation: str | None = None
    seen_kind = seen_conversation = False
    tv: dict[str, str] = {}
    rv: dict[str, str] = {}
    problems: list[str] = []
    found = False
    if truncated:
        problems.append("the Refer-To was longer than the adapter reads; the rest is ignored")
    for name, value in pairs:
        lowered = name.lower()
        if not lowered.startswith("x-ga-"):
            continue
        found = True
        rest, rest_lower = name[5:], lowered[5:]
        if rest_lower == "transfer":
            if seen_kind:
                problems.append("X-GA-transfer given more than once: the first one counts")
                continue
            seen_kind = True
            upper = value.strip().upper()
            if upper in _KINDS:
                kind = upper
            else:
                problems.append(f"X-GA-transfer is not AGENT or SYSTEM ({len(value)} chars)")
        elif rest_lower == "extconid":
            if seen_conversation:
                problems.append("X-GA-extConId given more than once: the first one counts")
                continue
            seen_conversation, conversation = True, value
        elif rest_lower[:3] in ("tv-", "rv-"):
            target = tv if rest_lower[:3] == "tv-" else rv
            variable = rest[3:]
            if not is_variable_name(variable):
                problems.append(f"skipped a variable whose name is not valid ({name[:8]}...)")
            elif variable in target:
                problems.append(f"{name} given more than once: the first one counts")
            else:
                target[variable] = value
    if not seen_kind:
        problems.append("no X-GA-transfer parameter")
    return GaReturn(kind, conversation, tv, rv, tuple(problems), found)
