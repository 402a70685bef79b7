"""What the AMI worker does on each new session before it takes events: check the
dialplan, resynchronise with the channels that live on, then keep the heartbeat."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from adapter.asterisk.ami import AmiSession
from adapter.asterisk.channel_vars import (
    DIAL_CONTEXTS,
    HOLD_APPS,
    INBOUND_CONTEXT,
    REFERRED_CONTEXT,
    REQUIRED_CONTEXTS,
)
from adapter.asterisk.messages import AmiError, first
from adapter.asterisk.settings import WorkerSettings
from adapter.asterisk.sip_channel import SIP_CONTEXTS, dial_uri_ok
from adapter.flow import AsyncTransferFlow, TransferMode
from adapter.store import StoreError

log = logging.getLogger("adapter.asterisk")


class StartupError(Exception):
    """The worker cannot run against this Asterisk (e.g. a context is missing)."""


class SessionStart:
    """Mixed into AsteriskWorker, which provides the attributes and methods below."""

    settings: WorkerSettings
    flow: AsyncTransferFlow | None
    calls: set[str]
    _sip_dialplan: bool

    def _spawn(self, uniqueid: str, work: Coroutine[Any, Any, None]) -> None:
        raise NotImplementedError

    async def _ended(self, uniqueid: str, why: str) -> None:
        raise NotImplementedError

    async def _returned_while_away(self, uniqueid: str) -> None:
        raise NotImplementedError

    async def _referred(self, uniqueid: str, received: float | None = None) -> None:
        raise NotImplementedError

    def _invite_returned(self, leg: str, received: float | None = None) -> None:
        raise NotImplementedError

    async def _handoff(self, uniqueid: str, linkedid: str, received: float | None = None) -> None:
        raise NotImplementedError

    async def _keep(self, uniqueid: str) -> None:
        raise NotImplementedError

    async def _heartbeat(self, session: AmiSession) -> None:
        """Until the session closes: a Ping that must be answered, or the session is dead."""
        interval = self.settings.ami.heartbeat
        while not session.closed.is_set():
            try:
                await asyncio.wait_for(session.closed.wait(), interval)
                break
            except TimeoutError:
                pass
            try:
                await session.ping(timeout=min(interval, self.settings.ami.action_timeout))
            except AmiError as exc:
                raise AmiError(f"heartbeat failed ({exc}): the connection is half-open") from None
        raise AmiError("connection closed by Asterisk")

    async def _check_dialplan(self, session: AmiSession, *, strictly: bool) -> None:
        sip = self.settings.flow.sip
        for name, uri in (("SIP_ASAPP_URI", sip.asapp_uri), ("SIP_ASAPP_DOMAIN", sip.asapp_domain)):
            if uri is not None and not dial_uri_ok(uri):
                raise StartupError(
                    f"{name} cannot be put into a Dial string (a sip: or sips: URI without "
                    "spaces, commas, '&', quotes or parentheses)"
                )
        # The SIP contexts are needed by the deployment's SIP mode, and by any hand-off that
        # asks for one with GA_TRANSFER_MODE: without them such a hand-off falls back.
        sip_missing = [c for c in SIP_CONTEXTS if not await session.has_extension(c, "s")]
        self._sip_dialplan = not sip_missing
        missing = [c for c in REQUIRED_CONTEXTS if not await session.has_extension(c, "s")]
        if self.settings.flow.sip.mode is not TransferMode.PHONE_NUMBER:
            missing += sip_missing
        if not missing:
            return
        message = (
            f"the dialplan has no extension s in {', '.join(missing)}: include "
            "extensions_genagent.conf, extensions_genagent_routes.conf (and for the SIP "
            "modes extensions_genagent_sip.conf), then 'dialplan reload'"
        )
        if strictly:
            raise StartupError(message)
        log.error("%s (callers redirected there would be hung up)", message)

    async def _resync(self, session: AmiSession) -> None:
        """Finish what happened while disconnected: hang-ups, dial ends, hand-offs."""
        assert self.flow is not None
        live = {first(c.get("Uniqueid")): c for c in await session.channels()}
        try:
            in_flight = set(await self.flow.in_flight()) | self.calls
        except StoreError:
            log.exception("cannot read calls in flight from the store")
            in_flight = set(self.calls)
        for uniqueid in in_flight - live.keys():
            self._spawn(uniqueid, self._ended(uniqueid, "gone after a reconnect"))
        for uniqueid, channel in live.items():
            context = first(channel.get("Context"))
            holding = first(channel.get("Application")).lower() in HOLD_APPS
            if context in DIAL_CONTEXTS and holding and uniqueid in in_flight:
                self.calls.add(uniqueid)
                self._spawn(uniqueid, self._returned_while_away(uniqueid))
            elif context == REFERRED_CONTEXT and holding and uniqueid in in_flight:
                self.calls.add(uniqueid)
                self._spawn(uniqueid, self._referred(uniqueid))
            elif context == INBOUND_CONTEXT and holding:
                self._invite_returned(uniqueid)
            elif context == "genagent-handoff" and holding:
                linkedid = first(channel.get("Linkedid")) or uniqueid
                self._spawn(uniqueid, self._handoff(uniqueid, linkedid))
            elif uniqueid in in_flight:
                self.calls.add(uniqueid)
                self._spawn(uniqueid, self._keep(uniqueid))
        log.info("resynchronised: %d channels live, %d calls in flight", len(live), len(in_flight))
