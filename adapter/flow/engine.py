"""Drivers that run the flow's effects: threads for the web app, asyncio for the AMI worker."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from adapter.flow.effects import CreateTransfer, Effect, GetTransfer, Load, Pause, Purge, Save
from adapter.flow.logic import FlowRules
from adapter.flow.model import CallRecord, CallStart, DialResult, Phase, Step
from adapter.flow.policy import FlowPolicy
from adapter.flow.routing import Router, default_router
from adapter.genagent import AsyncGenAgentClient, GenAgentClient, GenAgentError, StartSlot
from adapter.observe.call_events import observe_save
from adapter.store import CallStore, Stored, StoreError, WriteWouldWait

log = logging.getLogger("adapter.flow")

T = TypeVar("T")
_Now = Callable[[], datetime]
#: Called after each successful Save: (record as last read in that run or None, saved).
SaveObserver = Callable[[dict[str, Any] | None, dict[str, Any]], None]
#: Reads a call's record and reserves a start slot for the API request after it, in one
#: round trip: (call id, the request's longest deadline) -> (record or None, slot).
GetReserving = Callable[[str, float], tuple[Stored | None, StartSlot]]


def _utc_now() -> datetime:
    return datetime.now(UTC)


_Outcome = tuple[Any, Exception | None]


@dataclass(frozen=True, slots=True)
class _Done(Generic[T]):
    value: T


def _advance(flow: Generator[Effect, Any, T], outcome: _Outcome) -> Effect | _Done[T]:
    """Hand the last effect's result (or failure) to the flow; its next effect, or done."""
    value, error = outcome
    try:
        return flow.throw(error) if error else flow.send(value)
    except StopIteration as stop:
        return _Done(stop.value)


def _write(store: CallStore, effect: Save) -> Any:
    record = effect.record
    # "Active": the adapter still owes this call an action (being dialed, or on hold).
    active = record.phase in (Phase.DIALING, Phase.HOLDING)
    if effect.version is None:
        return store.create(record.call_id, record.to_json(), active=active)
    return store.update(
        record.call_id, record.to_json(), expected_version=effect.version, active=active
    )


def _watch(
    observer: SaveObserver, effect: Effect, result: Any, seen: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Track the record as this run last read or wrote it; tell ``observer`` of each Save."""
    if isinstance(effect, Load):
        return result.data if result is not None else None
    if not isinstance(effect, Save):
        return seen
    saved = result.data if isinstance(result, Stored) else effect.record.to_json()
    try:
        observer(None if effect.version is None else seen, saved)
    except Exception:  # observing must never change what happens to a call
        log.exception("call %s: observing a saved record failed", effect.record.call_id)
    return saved


class _Run:
    """What one run of a flow carries from one effect to the next."""

    __slots__ = ("seen", "slot")

    def __init__(self) -> None:
        self.seen: dict[str, Any] | None = None  # the record as last read or written
        self.slot: StartSlot | None = None  # reserved with the last Load, for the next call

    def take_slot(self) -> StartSlot | None:
        slot, self.slot = self.slot, None
        return slot


def _store_effect(store: CallStore, effect: Effect) -> Any:
    if isinstance(effect, Load):
        return store.get(effect.call_id)
    if isinstance(effect, Save):
        return _write(store, effect)
    if isinstance(effect, Purge):
        return store.purge(effect.older_than)
    raise TypeError(f"not a store effect: {effect!r}")


class TransferFlow:
    """The flow for threaded code (the Flask app): blocking API calls and store writes."""

    def __init__(
        self,
        client: GenAgentClient,
        store: CallStore,
        policy: FlowPolicy | None = None,
        router: Router = default_router,
        *,
        sleep: Callable[[float], None] = time.sleep,
        now: _Now = _utc_now,
        observer: SaveObserver = observe_save,
        get_reserving: GetReserving | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.rules = FlowRules(policy, router, now)
        self._sleep = sleep
        self._observer = observer
        self._get_reserving = get_reserving

    @property
    def policy(self) -> FlowPolicy:
        """The timing and retry policy in force."""
        return self.rules.policy

    def start(self, call: CallStart) -> Step:
        """A caller is handed over: request a transfer and say what to dial."""
        return self._run(self.rules.start(call))

    def dial_ended(self, call_id: str, attempt: int, result: DialResult) -> Step:
        """The front saw the dial of attempt ``attempt`` end with ``result``."""
        return self._run(self.rules.dial_ended(call_id, attempt, result))

    def context_poll(self, call_id: str, attempt: int) -> Step:
        """The caller was put on hold (a Hold step): read the context again."""
        return self._run(self.rules.context_poll(call_id, attempt))

    def sip_refer(self, call_id: str, refer_to: str) -> Step:
        """GenerativeAgent referred the caller of a SIP hand-off to ``refer_to``."""
        return self._run(self.rules.sip_refer(call_id, refer_to))

    def sip_invite(
        self, call_id: str, attempt: int | None, headers: Sequence[tuple[str, str]] = ()
    ) -> Step:
        """GenerativeAgent called the return URI; the answer is for the new leg."""
        return self._run(self.rules.sip_invite(call_id, attempt, headers))

    def call_ended(self, call_id: str, status: str) -> None:
        """The platform says the call is over (any phase)."""
        self._run(self.rules.call_ended(call_id, status))

    def load(self, call_id: str) -> CallRecord | None:
        """The call's record, if the store has one."""
        stored = self.store.get(call_id)
        return CallRecord.from_json(stored.data) if stored else None

    def _run(self, flow: Generator[Effect, Any, T]) -> T:
        outcome: _Outcome = (None, None)
        run = _Run()
        while True:
            effect = _advance(flow, outcome)
            if not isinstance(effect, Effect):
                return effect.value
            try:
                outcome = (self._execute(effect, run), None)
            except (GenAgentError, StoreError) as exc:
                outcome = (None, exc)
                continue
            run.seen = _watch(self._observer, effect, outcome[0], run.seen)

    def _execute(self, effect: Effect, run: _Run) -> Any:
        if isinstance(effect, CreateTransfer):
            return self.client.create_transfer(
                effect.request, deadline=effect.deadline, slot=run.take_slot()
            )
        if isinstance(effect, GetTransfer):
            return self.client.get_transfer(
                effect.transfer_id, deadline=effect.deadline, slot=run.take_slot()
            )
        if isinstance(effect, Pause):
            self._sleep(effect.seconds)
            return None
        if isinstance(effect, Load) and effect.api_within is not None and self._get_reserving:
            stored, run.slot = self._get_reserving(effect.call_id, effect.api_within)
            return stored
        return _store_effect(self.store, effect)


class AsyncTransferFlow:
    """The flow for asyncio code (the AMI worker): many calls on one event loop.

    Store operations run on one thread of their own: a store waiting on a lock never
    stalls the loop, and with a single connection the process's own writes never
    contend for SQLite's lock (several threads would, and wait in its busy handler).
    Reads of a store whose reads never wait (SQLite in WAL mode) run inline: a thread
    hop costs more CPU than the read. So do its writes when they find the write lock
    free (nearly always); one that would wait goes to the store's thread instead.
    API calls are awaited on the shared async client.
    """

    def __init__(
        self,
        client: AsyncGenAgentClient,
        store: CallStore,
        policy: FlowPolicy | None = None,
        router: Router = default_router,
        *,
        now: _Now = _utc_now,
        observer: SaveObserver = observe_save,
        get_reserving: GetReserving | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.rules = FlowRules(policy, router, now)
        self._observer = observer
        self._get_reserving = get_reserving
        self._store_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="call-store")

    @property
    def policy(self) -> FlowPolicy:
        """The timing and retry policy in force."""
        return self.rules.policy

    def close(self) -> None:
        """Stop the store's thread (after the pending operations)."""
        self._store_thread.shutdown(wait=True)

    async def in_flight(self) -> list[str]:
        """Calls the adapter still owes an action (being dialed or on hold), oldest first."""
        return await self._on_store_thread(self.store.active_ids)

    async def start(self, call: CallStart) -> Step:
        """A caller is handed over: request a transfer and say what to dial."""
        return await self._run(self.rules.start(call))

    async def dial_ended(self, call_id: str, attempt: int, result: DialResult) -> Step:
        """The front saw the dial of attempt ``attempt`` end with ``result``."""
        return await self._run(self.rules.dial_ended(call_id, attempt, result))

    async def context_poll(self, call_id: str, attempt: int) -> Step:
        """The caller was put on hold (a Hold step): read the context again."""
        return await self._run(self.rules.context_poll(call_id, attempt))

    async def sip_refer(self, call_id: str, refer_to: str) -> Step:
        """GenerativeAgent referred the caller of a SIP hand-off to ``refer_to``."""
        return await self._run(self.rules.sip_refer(call_id, refer_to))

    async def sip_invite(
        self, call_id: str, attempt: int | None, headers: Sequence[tuple[str, str]] = ()
    ) -> Step:
        """GenerativeAgent called the return URI; the answer is for the new leg."""
        return await self._run(self.rules.sip_invite(call_id, attempt, headers))

    async def call_ended(self, call_id: str, status: str) -> None:
        """The platform says the call is over (any phase)."""
        await self._run(self.rules.call_ended(call_id, status))

    async def load(self, call_id: str) -> CallRecord | None:
        """The call's record, if the store has one."""
        stored = await self._on_store_thread(self.store.get, call_id)
        return CallRecord.from_json(stored.data) if stored else None

    async def _on_store_thread(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._store_thread, function, *args)

    async def _run(self, flow: Generator[Effect, Any, T]) -> T:
        outcome: _Outcome = (None, None)
        run = _Run()
        while True:
            effect = _advance(flow, outcome)
            if not isinstance(effect, Effect):
                return effect.value
            try:
                outcome = (await self._execute(effect, run), None)
            except (GenAgentError, StoreError) as exc:
                outcome = (None, exc)
                continue
            run.seen = _watch(self._observer, effect, outcome[0], run.seen)

    async def _execute(self, effect: Effect, run: _Run) -> Any:
        if isinstance(effect, CreateTransfer):
            return await self.client.create_transfer(
                effect.request, deadline=effect.deadline, slot=run.take_slot()
            )
        if isinstance(effect, GetTransfer):
            return await self.client.get_transfer(
                effect.transfer_id, deadline=effect.deadline, slot=run.take_slot()
            )
        if isinstance(effect, Pause):
            await asyncio.sleep(effect.seconds)
            return None
        if isinstance(effect, Load) and effect.api_within is not None and self._get_reserving:
            stored, run.slot = await self._on_store_thread(
                self._get_reserving, effect.call_id, effect.api_within
            )
            return stored
        if isinstance(effect, Load) and self.store.local_reads:
            return _store_effect(self.store, effect)
        if isinstance(effect, Save) and self.store.inline_writes:
            try:
                with self.store.without_waiting():
                    return _write(self.store, effect)
            except WriteWouldWait:
                pass  # nothing was written: the store's thread waits for the lock
        return await self._on_store_thread(_store_effect, self.store, effect)
