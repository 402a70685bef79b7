"""The AMI worker's handling of GenerativeAgent giving a SIP call back: by REFER (the
caller moved into genagent-sip-referred) or by a new INVITE to the return URI (a new
channel held in genagent-sip-inbound). Also the guard every decision runs under.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Coroutine
from typing import Any

from adapter.asterisk.ami import AmiSession
from adapter.asterisk.messages import AmiError, ChannelGone
from adapter.asterisk.sip_channel import read_invite_return, read_refer_to
from adapter.flow import AsyncTransferFlow, Hangup, Route, Step
from adapter.flow.model import RouteKind
from adapter.observe.call_events import count_fallback
from adapter.store import StoreError

log = logging.getLogger("adapter.asterisk")


async def or_fallback(uniqueid: str, decision: Awaitable[Step]) -> Step:
    """The flow's decision; if deciding fails (the store, a bug), the fallback at once
    rather than a caller on hold until the dialplan's safety timeout."""
    try:
        return await decision
    except Exception as exc:
        reason = "store-error" if isinstance(exc, StoreError) else "internal-error"
        log.exception(
            "call %s: the flow failed; sending the caller to the fallback",
            uniqueid,
            extra={"call_id": uniqueid, "route": "fallback", "reason": reason},
        )
        count_fallback(reason)
        return Route(RouteKind.FALLBACK, reason="internal error")


class SipReturnEvents:
    """Mixed into AsteriskWorker, which provides the attributes and methods below."""

    flow: AsyncTransferFlow | None
    calls: set[str]

    def _spawn(self, uniqueid: str, work: Coroutine[Any, Any, None]) -> None:
        raise NotImplementedError

    def _live_session(self) -> AmiSession:
        raise NotImplementedError

    async def _ended(self, uniqueid: str, why: str) -> None:
        raise NotImplementedError

    async def _apply(
        self,
        uniqueid: str,
        step: Step,
        timed: tuple[str, float | None] = ("", None),
        *,
        leg: bool = False,
    ) -> None:
        raise NotImplementedError

    async def _referred(self, uniqueid: str, received: float | None = None) -> None:
        """GenerativeAgent's REFER moved the caller into genagent-sip-referred."""
        assert self.flow is not None
        self.calls.add(uniqueid)
        try:
            refer_to = await read_refer_to(self._live_session(), uniqueid)
        except ChannelGone:
            await self._ended(uniqueid, "gone after a REFER")
            return
        step = await or_fallback(uniqueid, self.flow.sip_refer(uniqueid, refer_to))
        await self._apply(uniqueid, step, ("referred", received))

    def _invite_returned(self, leg: str, received: float | None = None) -> None:
        """GenerativeAgent called the return URI: a new channel, held in
        genagent-sip-inbound. Its call is named by the Request-URI's transfer id; the
        work runs in that call's turn, so it never races the caller's own events."""

        async def work(call: tuple[str, int] | None, headers: tuple[tuple[str, str], ...]) -> None:
            assert self.flow is not None
            call_id, attempt = call if call is not None else (leg, None)
            if call is not None:
                # The caller's leg to GenerativeAgent now only carries the new leg's
                # audio: when it ends, the dialplan hangs the caller up.
                with contextlib.suppress(AmiError):
                    await self._live_session().setvar(call_id, "GA_SIP_RETURN", "invite")
            step = await or_fallback(call_id, self.flow.sip_invite(call_id, attempt, headers))
            if isinstance(step, Hangup):  # the call is over: nobody to route
                step = Route(RouteKind.FALLBACK, reason="INVITE return of an ended call")
            if isinstance(step, Route):
                self.calls.discard(call_id)
            await self._apply_to_leg(leg, step, received)

        async def read_then_work() -> None:
            try:
                call, headers = await read_invite_return(self._live_session(), leg)
            except ChannelGone:
                return
            if call is None:
                log.warning("INVITE return %s names no transfer: routed on its own", leg)
            self._spawn(call[0] if call else leg, work(call, headers))

        self._spawn(leg, read_then_work())

    async def _apply_to_leg(self, leg: str, step: Step, received: float | None) -> None:
        """Carry a decision out on an INVITE-return leg (never recorded as a call)."""
        await self._apply(leg, step, ("invite", received), leg=True)
        self.calls.discard(leg)
