"""GenerativeAgent's SIP side for the Asterisk rig: what ASAPP does with each SIP dial.

The fake PBX sends the INVITE (``Caller.invites``); the script says how ASAPP answers it
(200, or 486/503/408 as BUSY/CHANUNAVAIL/NOANSWER) and how it gives the caller back: BYE,
REFER (the Refer-To it would send) or INVITE (to the return URI). In sip-api mode the
sandbox plays the API side: the call reaches the transfer named by X-ASAPP-CallTransferId
and completes with the scripted outputContext.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from adapter.sip import CALL_TRANSFER_ID_HEADER
from tests.fake_ami.pbx import Caller, DialOutcome, wait_until

if TYPE_CHECKING:
    from tests.asterisk_rig import Rig

RETURN_URI = "sip:genagent-return@pbx.example.com"
SipAnswer = Literal["answer", "busy", "unavailable", "no-answer"]
SipEnding = Literal["bye", "refer", "invite", "caller-hangs-up", "none"]
_FAILED = {"busy": "BUSY", "unavailable": "CHANUNAVAIL", "no-answer": "NOANSWER"}


@dataclass(frozen=True, slots=True)
class SipLeg:
    """How ASAPP handles one SIP dial. ``refer_to``: the exact Refer-To to send (default:
    the return URI, with the output as X-GA-* parameters in sip-headers mode)."""

    answer: SipAnswer = "answer"
    ending: SipEnding = "bye"
    output: dict[str, Any] = field(default_factory=lambda: {"transferType": "SYSTEM"})
    refer_to: str | None = None


@dataclass
class SipPlay:
    """What ASAPP did on the calls of a test: REFER statuses, INVITE-return channels."""

    refer_statuses: list[int] = field(default_factory=list)
    returns: list[Caller | int] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


def ga_parameters(output: dict[str, Any]) -> str:
    """An outputContext as ASAPP's Refer-To query: X-GA-transfer, tv-, rv- (encoded)."""
    items = [("X-GA-transfer", str(output.get("transferType", "")))]
    items += [(f"X-GA-tv-{k}", str(v)) for k, v in output.get("transferVariables", {}).items()]
    items += [(f"X-GA-rv-{k}", str(v)) for k, v in output.get("referenceVariables", {}).items()]
    return "&".join(f"{name}={quote(value, safe='')}" for name, value in items)


async def play_sip(rig: Rig, caller: Caller, uri: str) -> DialOutcome:
    """The fake PBX sent ``caller``'s INVITE to ``uri``: play the next scripted leg."""
    legs = rig.sip_legs.get(caller.uniqueid) or []
    leg = legs.pop(0) if legs else SipLeg(answer="unavailable")
    if leg.answer != "answer":
        return DialOutcome(_FAILED[leg.answer])
    headers = dict(caller.invites[-1].headers)
    return_uri = RETURN_URI
    base = f"{rig.sandbox.url}/sandbox"
    transfer_id = headers.get(CALL_TRANSFER_ID_HEADER)
    if transfer_id is not None:  # sip-api: the API side of the call
        sip_call = {"headers": {CALL_TRANSFER_ID_HEADER: transfer_id}}
        connected = await rig.http.post(f"{base}/sip-calls", json=sip_call)
        if connected.status_code != 200:
            return DialOutcome("CHANUNAVAIL")
        body = connected.json()
        return_uri = (body.get("sip") or {}).get("returnURI") or RETURN_URI
        if leg.ending == "caller-hangs-up":
            await rig.http.post(f"{base}/transfers/{transfer_id}/caller-hangup")
        elif leg.ending != "none":
            await rig.http.post(f"{base}/transfers/{transfer_id}/complete", json=leg.output)
    if leg.ending == "bye":
        return DialOutcome("ANSWER", talk=0.01)
    task = asyncio.get_running_loop().create_task(_after_answer(rig, caller, leg, return_uri))
    rig.sip.tasks.add(task)
    task.add_done_callback(rig.sip.tasks.discard)
    return DialOutcome("ANSWER", talk=None)


async def _after_answer(rig: Rig, caller: Caller, leg: SipLeg, return_uri: str) -> None:
    await wait_until(lambda: (caller.dial and caller.dial.phase == "bridged") or None, 5, "bridge")
    if leg.ending == "caller-hangs-up":
        await caller.hang_up()
    elif leg.ending == "refer":
        headers_mode = CALL_TRANSFER_ID_HEADER not in dict(caller.invites[-1].headers)
        query = f"?{ga_parameters(leg.output)}" if headers_mode else ""
        rig.sip.refer_statuses.append(caller.refer(leg.refer_to or return_uri + query))
    elif leg.ending == "invite":
        output = (
            leg.output if CALL_TRANSFER_ID_HEADER not in dict(caller.invites[-1].headers) else {}
        )
        x_headers = {"X-GA-transfer": output["transferType"]} if output else {}
        rig.sip.returns.append(rig.fake.pbx.invite_return(return_uri, x_headers))
