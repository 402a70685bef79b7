"""The layer of the AMI worker that shares calls with other workers (active-active).

Every worker sees every event; ``_claim`` decides whether this one acts on a call (its
lease, adapter/asterisk/leases.py), ``_fence`` whether a decision may be carried out,
and ``_keep_leases`` renews the leases and hands orphaned calls to ``_adopt``. With
SQLite the leases grant everything and these are no-ops in effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from adapter.asterisk.leases import CallLeases, Fence, LeaseError
from adapter.asterisk.settings import WorkerSettings
from adapter.flow import Dial, Route, SipDial
from adapter.observe.masking import safe_id

log = logging.getLogger("adapter.asterisk")

# Calls remembered as another worker's (a hang-up that was missed must not leak memory).
_ELSEWHERE_MAX = 20_000


class CallSharing:
    """Mixed into AsteriskWorker, which provides the attributes and methods below."""

    settings: WorkerSettings
    calls: set[str]
    ready: asyncio.Event
    leases: CallLeases | None
    # Calls another worker holds, until they hang up: their dial ends are not ours
    # (if that worker dies, the orphan scan hands them over). Oldest first, bounded.
    _elsewhere: dict[str, None]

    def _spawn(self, uniqueid: str, work: Coroutine[Any, Any, None]) -> None:
        raise NotImplementedError

    async def _adopt(self, orphans: list[str]) -> None:
        raise NotImplementedError

    async def _claim(self, uniqueid: str) -> bool:
        """Whether this worker acts on the call: its lease is ours, or now taken."""
        assert self.leases is not None
        try:
            if delay := self.leases.claim_delay(uniqueid):
                await asyncio.sleep(delay)  # its preferred worker should claim it first
            if await self.leases.acquire(uniqueid):
                self._elsewhere.pop(uniqueid, None)
                return True
            log.debug("call %s: another worker holds it", safe_id(uniqueid))
            self._elsewhere[uniqueid] = None
            if len(self._elsewhere) > _ELSEWHERE_MAX:
                del self._elsewhere[next(iter(self._elsewhere))]
        except LeaseError as exc:
            log.error("call %s: %s; the dialplan's timeout will route it", safe_id(uniqueid), exc)
        self.calls.discard(uniqueid)
        return False

    async def _release(self, uniqueid: str) -> None:
        assert self.leases is not None
        try:
            await self.leases.release(uniqueid)
        except LeaseError as exc:
            log.warning("call %s: %s; its lease will run out", safe_id(uniqueid), exc)

    async def _fence(self, uniqueid: str, step: Dial | SipDial | Route, decision: str) -> bool:
        """Whether to carry ``step`` out: nobody has, and the lease is still ours."""
        assert self.leases is not None
        try:
            fence = await self.leases.fence(uniqueid, decision)
        except LeaseError as exc:
            log.error("call %s: %s; the dialplan's timeout will route it", safe_id(uniqueid), exc)
            return False
        if fence is Fence.GRANTED:
            return True
        if fence is Fence.LEASE_LOST:
            log.warning("call %s: another worker took the call over", safe_id(uniqueid))
            self.calls.discard(uniqueid)
        elif not isinstance(step, Dial | SipDial):
            self.calls.discard(uniqueid)  # routed already: the call has left our hands
        return False

    async def _unfence(self, uniqueid: str, decision: str) -> None:
        assert self.leases is not None
        with contextlib.suppress(LeaseError):
            await self.leases.unfence(uniqueid, decision)

    async def _keep(self, uniqueid: str) -> None:
        """A call in flight found by the resynchronisation: ours now (the lease is)."""
        self.calls.add(uniqueid)

    async def _keep_leases(self) -> None:
        """Every LEASE_TTL/3 while connected to AMI (without AMI the leases run out, so
        that another worker can act): renew the leases, adopt orphaned calls."""
        while True:
            await self.ready.wait()
            try:
                await self._lease_tick()
            except LeaseError as exc:
                log.error("cannot renew the call leases: %s", exc)
            except Exception:
                log.exception("keeping the call leases failed")
            await asyncio.sleep(self.settings.lease_ttl / 3)

    async def _lease_tick(self) -> None:
        assert self.leases is not None
        for uniqueid in await self.leases.renew():
            log.warning("call %s: its lease went to another worker", safe_id(uniqueid))
            self.calls.discard(uniqueid)
        if orphans := await self.leases.orphans():
            await self._adopt(orphans)


def decision_key(uniqueid: str, step: Dial | SipDial | Route) -> str:
    """One name per flow decision, the same each time the decision is replayed."""
    if isinstance(step, Dial):
        return f"dial {step.transfer_id}"
    if isinstance(step, SipDial):
        return f"sip-dial {step.transfer_id}"
    if step.transfer_id:
        return f"route {step.transfer_id}"
    return f"route {uniqueid} {step.kind.value} {step.reason}"
