"""The AMI worker's metrics: counted as calls are played, served on their own port."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client import REGISTRY

from adapter.config import Secret
from adapter.demo.simulator import AgentLeg
from adapter.observe.endpoints import metrics_server
from adapter.sandbox import SandboxServer
from tests.asterisk_rig import AGENT, running_rig
from tests.fake_ami.harness import async_test
from tests.fake_ami.pbx import wait_until

TOKEN = "worker-metrics-token-0123"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@async_test
async def test_a_call_on_asterisk_is_counted_and_served(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    handoff = sample("genagent_ami_event_action_seconds_count", event="handoff")
    returned = sample("genagent_ami_event_action_seconds_count", event="returned")
    agent = sample("genagent_routes_total", kind="agent")
    async with running_rig(sandbox, tmp_path) as rig:
        caller = rig.caller(AgentLeg(output=AGENT), GA_IV_accountNumber="value-9911")
        caller.hand_off()
        await caller.wait_until("genagent-agent", timeout=5)
        # The Redirect's answer may still be on its way: the call ends when it is read.
        await wait_until(lambda: not rig.worker.calls or None, 5, "the worker to finish")
    assert sample("genagent_ami_event_action_seconds_count", event="handoff") == handoff + 1
    assert sample("genagent_ami_event_action_seconds_count", event="returned") == returned + 1
    assert sample("genagent_routes_total", kind="agent") == agent + 1

    with metrics_server(Secret(TOKEN), port=0, host="127.0.0.1") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            assert (await http.get("/metrics")).status_code == 401
            page = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            assert (await http.get("/readyz")).status_code == 404
    assert page.status_code == 200
    assert 'genagent_routes_total{kind="agent"}' in page.text
    assert caller.uniqueid not in page.text
    assert "value-9911" not in page.text
