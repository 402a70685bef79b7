"""The SIP side of the fake Asterisk: what chan_pjsip and extensions_genagent_sip.conf do
when the worker sends a caller to GenerativeAgent over SIP, and how GenerativeAgent's
three returns look on AMI, as recorded in asterisk-sip-traces/:

- the pre-dial handler turns the inherited ``GAH_*`` variables into INVITE headers
  (a dialplan line holds 8,191 bytes after substitution: longer values are cut);
- BYE: the Dial returns (option g), exactly as a PSTN dial;
- REFER: refused without any AMI event (400 for a raw space, comma or non-ASCII
  character, 404 when the user part is no extension of the transfer context), else a
  blind transfer: ``Unhold`` and ``BlindTransfer`` of the ASAPP leg, the bridge torn
  down, the leg hung up, and the caller runs genagent-sip-referred (its Refer-To kept
  only under GET_TRANSFERRER_DATA's prefix, then cut into 1,000-character pieces);
- INVITE: a new PJSIP channel in the endpoint's context at the Request-URI's user part
  (404 and no event when there is no such extension), answered and held.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tests.fake_ami.model import RING, UP, Channel, bridge_event, channel_event, event, user_event

if TYPE_CHECKING:
    from tests.fake_ami.dialplan import Dialplan
    from tests.fake_ami.pbx import Caller, Pbx

SIP_DIAL = "genagent-sip-dial"
REFER_CONTEXT = "genagent-sip-refer"
REFERRED = "genagent-sip-referred"
INBOUND = "genagent-sip-inbound"  # the ASAPP endpoint's context in pjsip_genagent.conf
EXT_DATA_SIZE = 8192  # pbx.c: an application's data after substitution, NUL included
PJSIP_MAX_PKT_LEN = 65535  # a bigger INVITE is not sent: the dial ends CONGESTION (34)
INVITE_BASE_BYTES = 900  # request line, standard headers and SDP of a recorded INVITE
REFER_PIECE, REFER_PIECES = 1000, 8  # as genagent-sip-referred cuts GA_REFER_TO


@dataclass
class SipInvite:
    """An INVITE the fake sent to GenerativeAgent: its Request-URI and added headers."""

    uri: str
    headers: list[tuple[str, str]] = field(default_factory=list)


def digits(text: str) -> int:
    """``0${FILTER(0-9,text)}`` as the dialplan computes it."""
    return int("0" + "".join(ch for ch in text if ch.isdigit()))


def predial_headers(leg: Channel) -> list[tuple[str, str]]:
    """What genagent-sip-predial adds to the INVITE, from the leg's inherited variables."""
    headers = []
    for n in range(1, digits(leg.variables.get("GAH_COUNT", "")) + 1):
        parts = digits(leg.variables.get(f"GAH_PARTS_{n}", ""))
        value = "".join(leg.variables.get(f"GAH_VALUE_{n}_{k}", "") for k in range(1, parts + 1))
        name = leg.variables.get(f"GAH_NAME_{n}", "")
        if name:
            data = f"PJSIP_HEADER(add,{name})={value}".encode()[: EXT_DATA_SIZE - 1]
            headers.append((name, data.decode(errors="ignore").partition("=")[2]))
    return headers


def invite_too_big(invite: SipInvite) -> bool:
    """True if pjproject would not send this INVITE (trace-sip-3: 600 x 100-char headers)."""
    added = sum(len(n.encode()) + len(v.encode()) + 4 for n, v in invite.headers)
    return INVITE_BASE_BYTES + added > PJSIP_MAX_PKT_LEN


def pattern_matches(pattern: str, exten: str) -> bool:
    """Asterisk's extension matching: exact, or a ``_`` pattern (X, Z, N, [..], ., !)."""
    if not pattern.startswith("_"):
        return pattern == exten
    regex, rest = "", pattern[1:]
    while rest:
        char, rest = rest[0], rest[1:]
        if char == "[":
            body, _, rest = rest.partition("]")
            regex += "[" + re.sub(r"([\\^\]])", r"\\\1", body) + "]"
        else:
            regex += {"X": "[0-9]", "Z": "[1-9]", "N": "[2-9]", ".": ".+", "!": ".*"}.get(
                char.upper(), re.escape(char)
            )
    return re.fullmatch(regex, exten) is not None


def exten_exists(dialplan: Dialplan, context: str, exten: str) -> bool:
    """ast_exists_extension(context, exten, 1): an exact extension or a matching pattern."""
    known = dialplan.contexts.get(context)
    return known is not None and any(pattern_matches(e, exten) for e in known.extensions)


def _uri_of(value: str) -> str:
    text = value.strip()
    return text[1:].split(">", 1)[0] if text.startswith("<") else text


def user_part(uri: str) -> str:
    """The user part of ``sip:user@host;params?headers`` ('' when it has none)."""
    address = uri.partition(":")[2].split("?", 1)[0].split(";", 1)[0]
    return address.rpartition("@")[0] if "@" in address else ""


def refer_status(value: str) -> int | None:
    """400 for a Refer-To pjproject rejects (recorded: raw space, comma, non-ASCII, no URI)."""
    if any(ch in value for ch in " ,") or not value.isascii():
        return 400
    if not re.match(r"sips?:", _uri_of(value), re.IGNORECASE):
        return 400
    return None


def refer(pbx: Pbx, caller: Caller, value: str, header: str, leg_first: bool) -> int:
    """A REFER on the ASAPP leg bridged to ``caller``; the final status ASAPP learns."""
    dial = caller.dial
    if dial is None or dial.phase != "bridged" or dial.bridge is None:
        raise RuntimeError(f"{caller.name} is not bridged to GenerativeAgent")
    if status := refer_status(value):
        return status
    leg, channel, bridge = dial.legs[0], caller.channel, dial.bridge
    context = leg.variables.get("TRANSFER_CONTEXT") or INBOUND
    uri = _uri_of(value)
    exten = user_part(uri) or "s"
    if not exten_exists(pbx.dialplan, context, exten):
        return 404  # in the NOTIFY; nothing on AMI, the caller stays bridged
    pbx.emit(channel_event("Unhold", leg))
    pbx.emit(
        event(
            "BlindTransfer",
            "call,all",
            ("Result", "Success"),
            leg.snapshot("Transferer"),
            channel.snapshot("Transferee"),
            bridge.snapshot(),
            ("IsExternal", "Yes"),
            ("Context", context),
            ("Extension", exten),
        )
    )
    wanted = pbx.variable(channel, "GET_TRANSFERRER_DATA")
    if wanted and (wanted == "*" or header.lower().startswith(wanted.lower())):
        channel.set_var(f"~HASH~TRANSFER_DATA~{header}~", value)
    for name, set_to in (
        ("SIPTRANSFER", "yes"),
        ("SIPREFERRINGCONTEXT", context),
        ("SIPREFERTOHDR", uri.split("?", 1)[0]),
        ("BLINDTRANSFER", leg.name),
    ):
        channel.set_var(name, set_to)
    dial.phase = "done"
    if caller.program is not None:
        caller.program.cancel()  # the Dial ends without running the next priority
    caller.program, caller.dial = None, None
    channel.move(context, exten, 1)
    members = (leg, channel) if leg_first else (channel, leg)
    for member in members:
        bridge.members -= 1
        member.bridge_id = ""
        pbx.emit(bridge_event("BridgeLeave", bridge, member))
        if member is leg:
            pbx.hang_up_legs(leg)
    pbx.emit(bridge_event("BridgeDestroy", bridge))
    referred(pbx, caller)
    return 200


def referred(pbx: Pbx, caller: Caller) -> None:
    """genagent-sip-referred: keep the raw Refer-To in pieces, tell the worker, hold."""
    channel = caller.channel
    refer_to = ""
    for key in ("Refer-To", "refer-to", "r"):
        refer_to = channel.variables.get(f"~HASH~TRANSFER_DATA~{key}~", "")
        if refer_to:
            break
    channel.set_var("GA_REFER_TO", refer_to)
    parts = 0
    while parts < REFER_PIECES and parts * REFER_PIECE < len(refer_to):
        parts += 1
        piece = refer_to[(parts - 1) * REFER_PIECE : parts * REFER_PIECE]
        channel.set_var(f"GA_REFER_TO_{parts}", piece)
    channel.set_var("GA_REFER_TO_PARTS", str(parts))
    channel.move(REFERRED, "s", 1, "UserEvent")
    pbx.emit(
        user_event(
            channel,
            "GenerativeAgentReferred",
            ("TransferId", channel.variables.get("GA_TRANSFER_ID", "")),
            ("Parts", str(parts)),
            ("HoldTimeout", pbx.variable(channel, "GA_RETURN_TIMEOUT")),
        )
    )
    pbx.hold_for_worker(caller, REFERRED, "return-timeout")


def invite_return(pbx: Pbx, request_uri: str, headers: dict[str, str]) -> Caller | int:
    """A new INVITE from GenerativeAgent to ``request_uri``: the held channel, or 404."""
    exten = user_part(request_uri) or "s"
    if not exten_exists(pbx.dialplan, INBOUND, exten):
        return 404
    endpoint = pbx.variable(None, "GA_SIP_ENDPOINT") or "genagent-asapp"
    uniqueid = pbx.numbering.uniqueid()
    from_user = user_part(_uri_of(headers.get("From", "<sip:genagent@asapp>"))) or "genagent"
    channel = Channel(
        name=f"PJSIP/{endpoint}-{pbx.numbering.suffix()}",
        uniqueid=uniqueid,
        linkedid=uniqueid,
        tech="PJSIP",
        caller_num=from_user,
        caller_name="<unknown>",
        connected_num="<unknown>",
        connected_name="<unknown>",
        context=INBOUND,
        exten=exten,
        state=RING,
    )
    channel.sip = {
        "header-names": ",".join(headers),
        "request_uri": request_uri,
        **{f"header:{k.lower()}": v for k, v in headers.items()},
    }
    caller = pbx.adopt(channel)
    channel.state = UP
    channel.move(INBOUND, exten, 2, "Answer")
    pbx.emit(channel_event("Newstate", channel))
    channel.move(INBOUND, "s", 1, "UserEvent")
    pbx.emit(
        user_event(
            channel,
            "GenerativeAgentInviteReturn",
            ("HoldTimeout", pbx.variable(channel, "GA_RETURN_TIMEOUT")),
        )
    )
    pbx.hold_for_worker(caller, INBOUND, "return-timeout")
    return caller


def read_sip_function(channel: Channel, name: str) -> str | None:
    """Getvar of HASH(TRANSFER_DATA,..), CHANNEL(pjsip,request_uri), PJSIP_HEADER(read,..)."""
    if match := re.fullmatch(r"HASH\(([^,]+),(.*)\)", name):
        return channel.variables.get(f"~HASH~{match.group(1)}~{match.group(2)}~", "")
    if name == "CHANNEL(pjsip,request_uri)":
        return channel.sip.get("request_uri", "")
    if match := re.fullmatch(r"PJSIP_HEADERS\((.*)\)", name):
        prefix = match.group(1).lower()
        names = channel.sip.get("header-names", "").split(",")
        return ",".join(n for n in names if n and n.lower().startswith(prefix))
    if match := re.fullmatch(r"PJSIP_HEADER\(read,(.*)\)", name):
        return channel.sip.get(f"header:{match.group(1).lower()}", "")
    return None
