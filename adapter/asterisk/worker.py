"""The AMI worker: Asterisk events in, flow decisions out as Setvar + Redirect.

The dialplan (asterisk_conf/) raises ``GenerativeAgentTransfer`` when a caller is
handed over and ``GenerativeAgentReturned`` when the dial of a transfer number (or of
GenerativeAgent's SIP URI) ends; in the SIP modes also ``GenerativeAgentReferred`` when a
REFER moved the caller back, and ``GenerativeAgentInviteReturn`` on the new channel of an
INVITE return. A ``Hangup`` of a caller ends its call. The worker runs connect -> check the dialplan
-> resynchronise -> process events, and on any loss of the connection starts again
with backoff. Every call is handled in its own tracked task, serialised per call, so
one slow API call never holds up another call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Coroutine
from typing import Any

from panoramisk.message import Message

from adapter.asterisk.ami import AmiSession
from adapter.asterisk.channel_vars import (
    CONTEXT_VARIABLES,
    DIAL_CONTEXT,
    HANDOFF_COUNTER,
    HANDOFF_EVENT,
    HOLD_APPS,
    REQUIRED_CONTEXTS,
    RETURNED_EVENT,
    ROUTE_CONTEXTS,
    ROUTE_VARIABLE_PREFIXES,
    attempt_of,
    dial_result,
    route_variables,
)
from adapter.asterisk.connection import tls_context
from adapter.asterisk.leases import CallLeases, SecondWorkerError, open_leases
from adapter.asterisk.messages import (
    GETVAR_MAX,
    AmiError,
    ChannelGone,
    SessionClosed,
    first,
    raise_first_error,
    redirect_action,
)
from adapter.asterisk.session_start import SessionStart, StartupError
from adapter.asterisk.settings import WorkerSettings
from adapter.asterisk.sharing import CallSharing, decision_key
from adapter.asterisk.sip_channel import (
    INVITE_RETURN_EVENT,
    REFERRED_EVENT,
    send_to_sip_dial,
)
from adapter.asterisk.sip_events import SipReturnEvents, or_fallback
from adapter.flow import (
    AsyncTransferFlow,
    CallStart,
    Dial,
    DialResult,
    Hangup,
    Hold,
    Route,
    SipDial,
    Step,
    TransferMode,
)
from adapter.flow.model import RouteKind
from adapter.genagent import AsyncGenAgentClient
from adapter.genagent.values import fit_utf8
from adapter.observe.call_events import count_fallback
from adapter.observe.metrics import AMI_EVENT_ACTION
from adapter.store import CallStore, open_store
from adapter.store.shared_limit import shared_limit_for

log = logging.getLogger("adapter.asterisk")

__all__ = [
    "DIAL_CONTEXT",
    "REQUIRED_CONTEXTS",
    "ROUTE_CONTEXTS",
    "AsteriskWorker",
    "StartupError",
    "dial_result",
    "route_variables",
]


class AsteriskWorker(CallSharing, SipReturnEvents, SessionStart):
    """Hands Asterisk callers to GenerativeAgent and routes them back."""

    def __init__(
        self,
        settings: WorkerSettings,
        *,
        store: CallStore | None = None,
        client: AsyncGenAgentClient | None = None,
    ) -> None:
        self.settings = settings
        self._store = store
        self._client = client
        self.flow: AsyncTransferFlow | None = None
        self.session: AmiSession | None = None
        self.calls: set[str] = set()  # Uniqueids of callers the worker is handling
        self._hung_up: set[str] = set()  # of those, gone; their _ended is queued
        self.ready = asyncio.Event()  # logged in, checked and resynchronised
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._stopping = asyncio.Event()
        self._tls = tls_context(settings.ami)  # built (and warned about) once, at start-up
        self.leases: CallLeases | None = None
        self._elsewhere: dict[str, None] = {}  # calls other workers hold (sharing.py)
        self._sip_dialplan = True  # extensions_genagent_sip.conf is loaded (checked at connect)

    # --- life cycle --------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, check, resynchronise, process; reconnect with backoff until stopped."""
        store = self._store or open_store(self.settings.store_url, self.settings.store_options)
        try:
            self.leases = open_leases(
                self.settings.store_url,
                store,
                self.settings.store_options,
                ttl=self.settings.lease_ttl,
            )
        except SecondWorkerError as exc:
            if self._store is None:
                store.close()
            raise StartupError(str(exc)) from None
        shared = None
        client = self._client
        if client is None:
            shared = shared_limit_for(store, self.settings.genagent.max_requests_per_second)
            client = AsyncGenAgentClient(self.settings.genagent, shared_limit=shared)
        self.flow = AsyncTransferFlow(
            client,
            store,
            self.settings.flow,
            self.settings.router,
            get_reserving=shared.get_reserving if shared else None,
        )
        keeper = asyncio.get_running_loop().create_task(self._keep_leases())
        delay = 0.5
        first_session = True
        try:
            while not self._stopping.is_set():
                try:
                    await self._session(check_strictly=first_session)
                    delay = 0.5
                except StartupError:
                    raise
                except AmiError as exc:
                    if not self._stopping.is_set():
                        log.warning("AMI session ended: %s", exc)
                first_session = False
                if self._stopping.is_set():
                    break
                pause = delay * (0.5 + random.random())  # noqa: S311  # jitter, not crypto
                log.info("reconnecting to AMI in %.1f s", pause)
                await self._sleep_unless_stopped(pause)
                delay = min(delay * 2, self.settings.ami.reconnect_max)
        finally:
            keeper.cancel()
            await self._drain()
            await self.leases.close()
            self.flow.close()
            if self._client is None:
                await client.aclose()
            if self._store is None:
                store.close()

    def stop(self) -> None:
        """Ask run() to finish: it closes the session and returns."""
        self._stopping.set()
        if self.session is not None:
            self.session.close()

    async def _session(self, *, check_strictly: bool) -> None:
        ami = self.settings.ami
        session = AmiSession.for_settings(ami, self._tls)
        self.session = session
        await session.open({"UserEvent": self._on_user_event, "Hangup": self._on_hangup})
        log.info("logged in to AMI at %s:%d as %s", ami.host, ami.port, ami.username)
        try:
            await self._check_dialplan(session, strictly=check_strictly)
            await self._resync(session)
            self.ready.set()
            await self._heartbeat(session)
        finally:
            self.ready.clear()
            session.close()

    async def _drain(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.settings.ami.action_timeout)

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # --- events ------------------------------------------------------------------------

    def _on_user_event(self, event: Message) -> None:
        name = first(event.get("UserEvent"))
        uniqueid = first(event.get("Uniqueid"))
        if not uniqueid:
            return
        received = time.monotonic()
        if name == HANDOFF_EVENT:
            linkedid = first(event.get("Linkedid")) or uniqueid
            self._spawn(uniqueid, self._handoff(uniqueid, linkedid, received))
        elif name == RETURNED_EVENT and uniqueid not in self._elsewhere:
            status = first(event.get("DialStatus"))
            transfer_id = first(event.get("TransferId"))
            self._spawn(uniqueid, self._returned(uniqueid, status, transfer_id, received))
        elif name == REFERRED_EVENT and uniqueid not in self._elsewhere:
            self._spawn(uniqueid, self._referred(uniqueid, received))
        elif name == INVITE_RETURN_EVENT:
            self._invite_returned(uniqueid, received)

    def _on_hangup(self, event: Message) -> None:
        uniqueid = first(event.get("Uniqueid"))
        self._elsewhere.pop(uniqueid, None)
        if uniqueid in self.calls:
            self._hung_up.add(uniqueid)  # a hold in progress stops asking for the context
            self._spawn(
                uniqueid, self._ended(uniqueid, f"hangup cause {first(event.get('Cause'))}")
            )

    def _spawn(self, uniqueid: str, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` after earlier work on the same call; failures are logged, not lost."""
        task = asyncio.get_running_loop().create_task(self._serialised(uniqueid, work))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    async def _serialised(self, uniqueid: str, work: Coroutine[Any, Any, None]) -> None:
        lock, users = self._locks.get(uniqueid, (asyncio.Lock(), 0))
        self._locks[uniqueid] = (lock, users + 1)
        try:
            async with lock:
                if not await self._claim(uniqueid):
                    work.close()  # another worker acts on this call
                    return
                try:
                    await work
                finally:
                    if uniqueid not in self.calls:
                        await self._release(uniqueid)
        finally:
            lock, users = self._locks[uniqueid]
            if users == 1:
                del self._locks[uniqueid]  # no per-call memory left once a call is done
            else:
                self._locks[uniqueid] = (lock, users - 1)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call task failed", exc_info=task.exception())

    # --- per call ----------------------------------------------------------------------

    async def _handoff(self, uniqueid: str, linkedid: str, received: float | None = None) -> None:
        assert self.flow is not None
        session = self._live_session()
        self.calls.add(uniqueid)
        try:
            listed = await session.listed_variables(uniqueid)
            variables = dict(listed)
            # Each value as Getvar would read it (the newest, at most 1,023 bytes, here cut
            # at a character's boundary), from the Status answer: no Getvar round trip.
            context: dict[str, str] = {}
            for name, value in listed:
                if name not in context and (name in CONTEXT_VARIABLES or name.startswith("GA_IV_")):
                    context[name] = _as_getvar(value)
            # What an earlier hand-off's route set must not reach this one's route context.
            stale = [
                name
                for name, value in variables.items()
                if name.startswith(ROUTE_VARIABLE_PREFIXES) and value
            ]
            if stale:
                raise_first_error(await session.setvars(uniqueid, dict.fromkeys(stale, "")))
        except ChannelGone:
            await self._ended(uniqueid, "gone before the hand-off")
            return
        counter = context.get(HANDOFF_COUNTER, "").strip()
        mode = TransferMode.parse(context.get("GA_TRANSFER_MODE"))
        if context.get("GA_TRANSFER_MODE") and mode is None:
            log.warning("call %s: GA_TRANSFER_MODE is not a transfer mode: ignored", uniqueid)
        call = CallStart(
            call_id=uniqueid,
            conversation_id=context.get("GA_CONVERSATION_ID") or linkedid,
            country=(context.get("GA_COUNTRY") or self.settings.country).upper(),
            task_name=context.get("GA_TASK") or self.settings.task_name,
            input_variables={
                name[len("GA_IV_") :]: value
                for name, value in context.items()
                if name.startswith("GA_IV_") and len(name) > len("GA_IV_")
            },
            token=f"seq-{counter}" if counter.isdigit() else None,
            mode=mode,
            customer_id=context.get("GA_CUSTOMER_ID") or None,
        )
        step = await or_fallback(uniqueid, self.flow.start(call))
        await self._apply(uniqueid, step, ("handoff", received))

    async def _returned(
        self, uniqueid: str, status: str, transfer_id: str, received: float | None = None
    ) -> None:
        self.calls.add(uniqueid)
        step = self._after_dial(uniqueid, dial_result(status), transfer_id)
        await self._apply(uniqueid, await or_fallback(uniqueid, step), ("returned", received))

    async def _after_dial(self, uniqueid: str, result: DialResult, transfer_id: str) -> Step:
        assert self.flow is not None
        attempt = attempt_of(transfer_id, uniqueid)
        if attempt is None:  # the dialplan lost GA_TRANSFER_ID: the store knows the attempt
            record = await self.flow.load(uniqueid)
            if record is None or record.current is None:
                log.warning("call %s: dial ended, but no hand-off is known", uniqueid)
                return Route(RouteKind.FALLBACK, reason="unknown call")
            attempt = record.current.number
        return await self.flow.dial_ended(uniqueid, attempt, result)

    async def _returned_while_away(self, uniqueid: str) -> None:
        session = self._live_session()
        try:
            status = await session.getvar(uniqueid, "DIALSTATUS")
            transfer_id = await session.getvar(uniqueid, "GA_TRANSFER_ID")
        except ChannelGone:
            await self._ended(uniqueid, "gone after a reconnect")
            return
        await self._returned(uniqueid, status, transfer_id)

    async def _ended(self, uniqueid: str, why: str) -> None:
        assert self.flow is not None
        self.calls.discard(uniqueid)
        self._hung_up.discard(uniqueid)
        await self.flow.call_ended(uniqueid, why)

    async def _apply(
        self,
        uniqueid: str,
        step: Step,
        timed: tuple[str, float | None] = ("", None),
        *,
        leg: bool = False,
    ) -> None:
        """Carry a flow decision out on the caller's channel (``leg``: on an INVITE-return
        leg, which is no call of its own); ``timed`` is the event that led here and when it
        arrived (for the event-to-action histogram)."""
        assert self.flow is not None
        while isinstance(step, Hold):
            if uniqueid in self._hung_up:
                return  # the caller is gone: its queued _ended records it
            # The caller is on music on hold in genagent-dial: ask again (the poll itself
            # waits a poll interval first).
            poll = self.flow.context_poll(step.call_id or uniqueid, step.attempt)
            step = await or_fallback(uniqueid, poll)
        if isinstance(step, Hangup):
            self.calls.discard(uniqueid)
            return
        session = self._live_session()
        decision = decision_key(uniqueid, step)
        if not await self._fence(uniqueid, step, decision):
            return
        try:
            if isinstance(step, SipDial):
                try:
                    if not self._sip_dialplan:
                        raise ValueError("extensions_genagent_sip.conf is not loaded")
                    left_out = await send_to_sip_dial(session, uniqueid, step)
                except ValueError as exc:  # the caller must not be Redirected into nowhere
                    log.error("call %s: no SIP dial: %s", uniqueid, exc)
                    count_fallback("other")
                    await self._apply(uniqueid, Route(RouteKind.FALLBACK, reason=str(exc)))
                    return
                if left_out:
                    log.warning("call %s: headers left out or cut: %s", uniqueid, left_out)
                _observe_action(*timed)
                return
            if isinstance(step, Dial):
                # One write: Asterisk runs them in order, and the only way a Setvar of these
                # fails (the channel is gone) fails the Redirect too.
                dial = {"GA_TRANSFER_NUMBER": step.number, "GA_TRANSFER_ID": step.transfer_id}
                redirect = redirect_action(uniqueid, DIAL_CONTEXT)
                raise_first_error(await session.setvars(uniqueid, dial, then=redirect))
                _observe_action(*timed)
                return
            # The variables and the Redirect in one write: Asterisk runs them in order.
            variables = route_variables(step)
            *answers, redirected = await session.setvars(
                uniqueid, variables, then=redirect_action(uniqueid, ROUTE_CONTEXTS[step.kind])
            )
            for name, answer in zip(variables, answers, strict=True):
                if isinstance(answer, ChannelGone):
                    raise answer
                if isinstance(answer, AmiError):  # one refused variable must not strand
                    log.warning("call %s: %s not set: %s", uniqueid, name, answer)
            raise_first_error([redirected])
            _observe_action(*timed)
            self.calls.discard(uniqueid)
        except ChannelGone:
            log.debug("call %s: the channel went away before the action", uniqueid)
            if not leg:
                await self._ended(uniqueid, "gone before the action")
        except SessionClosed:
            # The Redirect was not sent: let the resynchronisation carry the decision out.
            await self._unfence(uniqueid, decision)
            raise

    def _live_session(self) -> AmiSession:
        session = self.session
        if session is None or session.closed.is_set():
            raise AmiError("no AMI session")
        return session

    # --- adopting the calls of a worker that died (see adapter/asterisk/sharing.py) ----

    async def _adopt(self, orphans: list[str]) -> None:
        try:
            live = {first(c.get("Uniqueid")): c for c in await self._live_session().channels()}
        except AmiError as exc:
            log.warning("cannot list channels to adopt %d calls: %s", len(orphans), exc)
            return
        log.warning("adopting %d calls of a worker that stopped renewing them", len(orphans))
        for uniqueid in orphans:
            self._spawn(uniqueid, self._adopted(uniqueid, live.get(uniqueid)))

    async def _adopted(self, uniqueid: str, channel: Message | None) -> None:
        """Finish what the call's former worker left, as after a reconnect."""
        if channel is None:
            await self._ended(uniqueid, "gone while its worker was down")
            return
        context = first(channel.get("Context"))
        holding = first(channel.get("Application")).lower() in HOLD_APPS
        if context == DIAL_CONTEXT and holding:
            await self._returned_while_away(uniqueid)
        elif context == "genagent-handoff" and holding:
            await self._handoff(uniqueid, first(channel.get("Linkedid")) or uniqueid)
        elif context in (DIAL_CONTEXT, "genagent-handoff"):
            self.calls.add(uniqueid)  # being dialed: its next event is ours
            try:  # it may have hung up since the channel list (an unseen Hangup)
                await self._live_session().getvar(uniqueid, "GA_TRANSFER_ID")
            except ChannelGone:
                await self._ended(uniqueid, "gone while its worker was down")


def _observe_action(event: str, received: float | None) -> None:
    if event and received is not None:
        AMI_EVENT_ACTION.labels(event).observe(time.monotonic() - received)


def _as_getvar(value: str) -> str:
    """``value`` cut to what Getvar answers: 1,023 bytes of UTF-8, whole characters."""
    return value if len(value) * 4 <= GETVAR_MAX else fit_utf8(value, GETVAR_MAX)
