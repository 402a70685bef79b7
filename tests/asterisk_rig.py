"""The Asterisk front end to end: the real worker, the fake AMI server, the sandbox, a store.

The fake PBX runs the shipped dialplan; when it dials a transfer number, the rig plays
GenerativeAgent's side through the sandbox's control endpoints, as scripted per caller.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from adapter.asterisk import AmiSettings, AsteriskWorker, WorkerSettings
from adapter.config import Secret
from adapter.demo.simulator import AgentLeg
from adapter.flow import CallRecord, FlowPolicy
from adapter.sandbox import SandboxServer
from adapter.store import CallStore, open_store
from tests.asterisk_sip_rig import SipLeg, SipPlay, play_sip
from tests.conftest import settings_for
from tests.fake_ami.pbx import Caller, DialOutcome, wait_until
from tests.fake_ami.server import FakeAsterisk

AGENT = {
    "transferType": "AGENT",
    "currentTaskName": "billing",
    "transferVariables": {"reason": "dispute"},
    "referenceVariables": {"account-id": "42"},
}
SYSTEM = {"transferType": "SYSTEM", "currentTaskName": "balance", "transferVariables": {"b": "1"}}
_PBX_STATUS = {"no-answer": "NOANSWER", "busy": "BUSY", "failed": "CHANUNAVAIL"}


@dataclass
class Rig:
    """A running worker with its fake Asterisk, sandbox and store."""

    fake: FakeAsterisk
    sandbox: SandboxServer
    store: CallStore
    worker: AsteriskWorker | None  # None when the workers run as processes
    http: httpx.AsyncClient
    legs: dict[str, list[AgentLeg]] = field(default_factory=dict)
    sip_legs: dict[str, list[SipLeg]] = field(default_factory=dict)
    sip: SipPlay = field(default_factory=SipPlay)
    hang_ups: set[asyncio.Task[None]] = field(default_factory=set)

    def caller(self, *legs: AgentLeg, **variables: str) -> Caller:
        """A caller in the IVR with these channel variables and scripted dials."""
        caller = self.fake.new_caller(variables)
        self.legs[caller.uniqueid] = list(legs)
        return caller

    def sip_caller(self, *legs: SipLeg, **variables: str) -> Caller:
        """A caller in the IVR whose SIP dials ASAPP handles as scripted."""
        caller = self.fake.new_caller(variables)
        self.sip_legs[caller.uniqueid] = list(legs)
        return caller

    async def play_agent(self, caller: Caller, number: str) -> DialOutcome:
        """The fake PBX dials ``number``: play the next scripted leg on the sandbox."""
        if number.lower().startswith(("sip:", "sips:")):
            return await play_sip(self, caller, number)
        legs = self.legs.get(caller.uniqueid) or []
        leg = legs.pop(0) if legs else AgentLeg(answer="no-answer")
        if leg.answer in _PBX_STATUS:
            return DialOutcome(_PBX_STATUS[leg.answer])
        base = f"{self.sandbox.url}/sandbox"
        connected = await self.http.post(f"{base}/calls", json={"transferNumber": number})
        if connected.status_code == 404:  # an expired or unknown number: not in service
            return DialOutcome("CHANUNAVAIL")
        transfer_id = connected.json()["id"]
        if leg.ending == "caller-hangs-up":
            await self.http.post(f"{base}/transfers/{transfer_id}/caller-hangup")
            task = asyncio.get_running_loop().create_task(self._hang_up_soon(caller))
            self.hang_ups.add(task)
            task.add_done_callback(self.hang_ups.discard)
            return DialOutcome("ANSWER", talk=None)
        await self.http.post(f"{base}/transfers/{transfer_id}/complete", json=leg.output)
        return DialOutcome("ANSWER", talk=0.01)

    def hold_agent(self) -> asyncio.Event:
        """Keep every GenerativeAgent answer waiting until the returned event is set."""
        gate = asyncio.Event()
        answer = self.play_agent

        async def held(caller: Caller, number: str) -> DialOutcome:
            await gate.wait()
            return await answer(caller, number)

        self.play_agent = held  # type: ignore[method-assign]
        return gate

    @staticmethod
    async def _hang_up_soon(caller: Caller) -> None:
        await wait_until(
            lambda: (caller.dial and caller.dial.phase == "bridged") or None, 2, "bridge"
        )
        await caller.hang_up()

    async def record(self, caller: Caller, phase: str | None = None) -> CallRecord:
        """The call's record once it exists (and has reached ``phase``)."""

        def found() -> CallRecord | None:
            stored = self.store.get(caller.uniqueid)
            if stored is None or (phase and stored.data["phase"] != phase):
                return None
            return CallRecord.from_json(stored.data)

        return await wait_until(found, 5.0, f"record of {caller.name} in {phase}")

    async def transfers(self) -> list[dict[str, Any]]:
        response = await self.http.get(f"{self.sandbox.url}/sandbox/transfers")
        return list(response.json()["transfers"])


def worker_settings(
    fake: FakeAsterisk, sandbox: SandboxServer, store_url: str, flow: FlowPolicy | None = None
) -> WorkerSettings:
    """The least-privilege AMI user of asterisk_conf/manager_genagent.conf; short timeouts."""
    return WorkerSettings(
        ami=AmiSettings(
            host="127.0.0.1",
            port=fake.port,
            username="genagent-adapter",
            secret=Secret("worker-secret"),
            action_timeout=2.0,
            heartbeat=1.0,
            reconnect_max=0.5,
        ),
        genagent=settings_for(sandbox.url, deadline=1.5, attempt_timeout=0.5),
        flow=flow or FlowPolicy(create_deadline=1.5, context_wait=1.0, poll_interval=0.05),
        store_url=store_url,
    )


@contextlib.asynccontextmanager
async def running_rig(
    sandbox: SandboxServer,
    tmp_path: Path,
    *,
    start: bool = True,
    flow: FlowPolicy | None = None,
    ami: dict[str, Any] | None = None,
    **fake_options: Any,
) -> AsyncIterator[Rig]:
    """Start everything; the worker is ready (logged in, checked, resynchronised) on entry.

    ``ami`` overrides AmiSettings fields; ``fake_options`` go to FakeAsterisk."""
    fake_options.setdefault("dial_timeout", 0.05)
    holder: list[Rig] = []

    async def dial_handler(caller: Caller, number: str) -> DialOutcome:
        return await holder[0].play_agent(caller, number)

    fake = await FakeAsterisk(dial_handler=dial_handler, **fake_options).start()
    store_url = f"sqlite:///{tmp_path / 'asterisk.sqlite3'}"
    store = open_store(store_url)
    settings = worker_settings(fake, sandbox, store_url, flow)
    settings = replace(settings, ami=replace(settings.ami, **(ami or {})))
    worker = AsteriskWorker(settings, store=store)
    http = httpx.AsyncClient(timeout=10)
    rig = Rig(fake, sandbox, store, worker, http)
    holder.append(rig)
    running = asyncio.get_running_loop().create_task(worker.run()) if start else None
    try:
        if running is not None:
            ready = asyncio.ensure_future(worker.ready.wait())
            await asyncio.wait({ready, running}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
            if running.done():
                running.result()  # raise what stopped it
            assert worker.ready.is_set(), "the worker did not get ready"
        yield rig
    finally:
        worker.stop()
        if running is not None:
            await asyncio.wait_for(running, 10)
        for task in rig.hang_ups | rig.sip.tasks:
            task.cancel()
        await http.aclose()
        await fake.stop()
        store.close()


async def agent_call(rig: Rig) -> None:
    """One caller handed off and routed to the agent context, end to end."""
    caller = rig.caller(AgentLeg(output=AGENT))
    caller.hand_off()
    await caller.wait_until("genagent-agent", timeout=15)
    await wait_until(lambda: not rig.worker.calls or None, 10, "the call to finish")
