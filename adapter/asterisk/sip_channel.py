"""What the worker and extensions_genagent_sip.conf tell each other about a SIP hand-off.

Out: the SIP URI and the INVITE's headers as channel variables. A header goes to the
outbound PJSIP channel only through inherited variables (``_GAH_*``) that the pre-dial
handler turns into ``PJSIP_HEADER(add,...)``; an AMI line holds 1,024 bytes, so a value
travels in pieces of at most 1,000 bytes (never splitting a character) that the
dialplan joins, and a dialplan line holds 8,191 bytes, so at most 8 pieces.

In: after a REFER the dialplan keeps the raw Refer-To in ``GA_REFER_TO_<n>`` pieces of
1,000 characters (Getvar returns 1,023 at most); after an INVITE return the worker reads
the new channel's Request-URI and X- headers. Building headers and parsing what comes
back is adapter.sip's job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from adapter.asterisk.ami import AmiSession
from adapter.flow import SipDial
from adapter.sip.headers import fit_headers
from adapter.sip.return_uri import split_transfer_id, transfer_id_in

SIP_DIAL_CONTEXT = "genagent-sip-dial"
SIP_CONTEXTS = (
    SIP_DIAL_CONTEXT,
    "genagent-sip-predial",
    "genagent-sip-header",
    "genagent-sip-refer",
    "genagent-sip-referred",
    "genagent-sip-inbound",
)
REFERRED_EVENT = "GenerativeAgentReferred"
INVITE_RETURN_EVENT = "GenerativeAgentInviteReturn"
PIECE_BYTES = 1000
MAX_PIECES = 8
# Asterisk's pjproject sends no INVITE over 65,535 bytes (the dial ends CONGESTION): the
# added headers keep 60,000, leaving room for the standard headers and the SDP.
INVITE_HEADER_BUDGET = 60_000
REFER_PIECES_MAX = 8  # genagent-sip-referred keeps 8 pieces of 1,000 characters
REQUEST_URI = "CHANNEL(pjsip,request_uri)"
MAX_X_HEADERS = 64  # of an INVITE return, read one Getvar each
# What may reach Dial(PJSIP/<endpoint>/<uri>,...): no argument separators, parentheses,
# quotes, spaces or "&" (Dial's list of targets).
_DIAL_URI = re.compile(r"sips?:[A-Za-z0-9.!~*'_;:=+$/?@%\[\]-]{1,900}", re.IGNORECASE)
_HEADER_NAME = re.compile(r"[A-Za-z0-9!%*_+`'~.-]{1,64}")


def dial_uri_ok(uri: str) -> bool:
    """True if ``uri`` can be put into the Dial string as it is."""
    return _DIAL_URI.fullmatch(uri) is not None and "'" not in uri


def pieces(value: str, size: int = PIECE_BYTES) -> list[str]:
    """``value`` cut into pieces of at most ``size`` UTF-8 bytes, no character split."""
    out: list[str] = []
    rest = value
    while rest:
        piece, used = "", 0
        for index, char in enumerate(rest):
            width = len(char.encode("utf-8"))
            if used + width > size:
                piece, rest = rest[:index], rest[index:]
                break
            used += width
        else:
            piece, rest = rest, ""
        out.append(piece)
    return out


def header_variables(headers: Iterable[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[str]]:
    """The Setvar (variable, value) pairs that put ``headers`` on the INVITE, and the
    names of headers left out (a name that is no SIP token, an empty value) or cut
    (longer than the dialplan can join)."""
    variables: list[tuple[str, str]] = []
    problems: list[str] = []
    count = 0
    for name, raw in headers:
        value = _clean(raw)
        if _HEADER_NAME.fullmatch(name) is None or not value:
            problems.append(name[:64])
            continue
        parts = pieces(value)
        if len(parts) > MAX_PIECES:
            problems.append(name)
            parts = parts[:MAX_PIECES]
        count += 1
        variables.append((f"_GAH_NAME_{count}", name))
        variables.append((f"_GAH_PARTS_{count}", str(len(parts))))
        variables += [(f"_GAH_VALUE_{count}_{k}", p) for k, p in enumerate(parts, start=1)]
    variables.insert(0, ("_GAH_COUNT", str(count)))
    return variables, problems


def header_line_bytes(name: str, value: str) -> int:
    """Bytes of ``name: value`` CRLF on the INVITE."""
    return len(name.encode()) + len(value.encode("utf-8", "replace")) + 4


def _clean(value: str) -> str:
    """A header value as one line: CR/LF become spaces, NUL and lone surrogates go."""
    return re.sub("[\x00\ud800-\udfff]", "", re.sub("[\r\n]", " ", value))


async def read_refer_to(session: AmiSession, channel: str) -> str:
    """The raw Refer-To of the REFER that moved ``channel`` into genagent-sip-referred
    ('' when Asterisk kept none: no GET_TRANSFERRER_DATA, another header name)."""
    count_text = await session.getvar(channel, "GA_REFER_TO_PARTS")
    count = min(int("0" + "".join(c for c in count_text if c.isdigit())[:2]), REFER_PIECES_MAX)
    parts = [await session.getvar(channel, f"GA_REFER_TO_{n}") for n in range(1, count + 1)]
    return "".join(parts)


async def read_request_uri(session: AmiSession, channel: str) -> str:
    """The Request-URI of an INVITE return (what ASAPP made of our returnURI)."""
    return await session.getvar(channel, REQUEST_URI)


async def send_to_sip_dial(session: AmiSession, channel: str, step: SipDial) -> list[str]:
    """Set the SIP URI, the transfer id and the headers on ``channel`` and Redirect it into
    genagent-sip-dial; the names of headers left out or cut. Raises ValueError for a URI
    that cannot be put into a Dial string (nothing is sent then)."""
    if not dial_uri_ok(step.uri):
        raise ValueError("the SIP URI cannot be dialed from the dialplan")
    fitted = fit_headers(step.headers, INVITE_HEADER_BUDGET, cost=header_line_bytes)
    variables, problems = header_variables(fitted.kept)
    problems += fitted.dropped
    await session.setvar(channel, "GA_SIP_URI", step.uri)
    await session.setvar(channel, "GA_TRANSFER_ID", step.transfer_id)
    for name, value in variables:
        await session.setvar(channel, name, value)
    await session.redirect(channel, SIP_DIAL_CONTEXT)
    return problems


async def read_invite_return(
    session: AmiSession, channel: str
) -> tuple[tuple[str, int] | None, tuple[tuple[str, str], ...]]:
    """An INVITE return's (call id, attempt) from the ``;transfer=`` parameter of its
    Request-URI (None when it names none), and its ``X-`` headers."""
    uri = await session.getvar(channel, REQUEST_URI)
    transfer_id = transfer_id_in(uri)
    names = (await session.getvar(channel, "PJSIP_HEADERS(X-)")).split(",")
    headers = []
    for name in [n.strip() for n in names if _HEADER_NAME.fullmatch(n.strip())][:MAX_X_HEADERS]:
        headers.append((name, await session.getvar(channel, f"PJSIP_HEADER(read,{name})")))
    return (split_transfer_id(transfer_id) if transfer_id else None), tuple(headers)
