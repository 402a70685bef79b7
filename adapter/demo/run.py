"""``python -m adapter demo``: whole calls, end to end, on this machine, no credentials.

Starts the sandbox and the real Flask app on free loopback ports, plays calls the way
Twilio would, with the sandbox playing GenerativeAgent, and prints each call as a
timeline. Exits 0 when every call ended as expected.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

import httpx

from adapter.config import GenAgentSettings, Secret
from adapter.demo.simulator import (
    DEFAULT_SIP_RETURN_URI,
    AgentLeg,
    CallResult,
    CallScript,
    TwilioSimulator,
)
from adapter.flow import CallRecord, FlowPolicy, Outcome, SipReturn
from adapter.sandbox import SandboxConfig, SandboxServer
from adapter.serving import BackgroundServer
from adapter.sip import SipTransferSettings
from adapter.store import CallStore, open_store
from adapter.twilio.settings import Destination, TwilioSettings
from adapter.web import WebSettings, create_app

AUTH_TOKEN = "demo-auth-token"  # noqa: S105  # the demo's own, signs loopback requests only
AGENT_NUMBER = "+15550100"
IVR_RETURN_URL = "https://ivr.example.com/after-agent"
# Adapter-side timeline entries worth showing next to what Twilio saw.
_ADAPTER_EVENTS = {
    "handoff",
    "holding",
    "transfer requested",
    "transfer request failed",
    "context fetched",
    "context fetch failed",
    "context not ready",
    "returned",
    "route",
}
AGENT_OUT = {"transferType": "AGENT", "transferVariables": {"reason": "dispute"}}
SYSTEM_OUT = {"transferType": "SYSTEM", "transferVariables": {"balance": "120.50"}}

Check = Callable[[CallResult, CallRecord], str | None]


@dataclass(frozen=True, slots=True)
class Scenario:
    """One demo call: what happens, and how it must end."""

    title: str
    script: CallScript
    check: Check
    faults: dict[str, Any] = field(default_factory=dict)


def _expect(
    outcome: Outcome, verb: str | None = None, dials: int | None = None, target: str = ""
) -> Check:
    def check(result: CallResult, record: CallRecord) -> str | None:
        if record.outcome is not outcome:
            return f"outcome {record.outcome} instead of {outcome}"
        if verb is not None and result.final_verb != verb:
            return f"ended with {result.final_verb or 'nothing'} instead of {verb}"
        if target and target not in result.final_target:
            return f"went to {result.final_target!r}, not {target!r}"
        if dials is not None and len(set(result.dialed)) != dials:
            return f"dialed {len(result.dialed)} transfer numbers instead of {dials}"
        return None

    return check


def _system_return(result: CallResult, record: CallRecord) -> str | None:
    problem = _expect(Outcome.AGENT_RETURNED, "Redirect", 1, IVR_RETURN_URL)(result, record)
    if problem:
        return problem
    query = parse_qs(urlsplit(result.final_target).query)
    if query.get("transferType") != ["SYSTEM"] or query.get("tv_balance") != ["120.50"]:
        return "the IVR did not get the agent's variables"
    return None


def _handed_off_twice(result: CallResult, record: CallRecord) -> str | None:
    problem = _expect(Outcome.AGENT_RETURNED, "Dial", 2, AGENT_NUMBER)(result, record)
    if problem:
        return problem
    kinds = [h.route.kind.value if h.route else None for h in record.handoffs]
    return None if kinds == ["system", "agent"] else f"hand-offs routed {kinds}"


def _returned_by(how: SipReturn, outcome: Check) -> Check:
    def check(result: CallResult, record: CallRecord) -> str | None:
        problem = outcome(result, record)
        if problem:
            return problem
        if not result.sip_dialed:
            return "nothing was dialed by SIP"
        returned = record.attempts[-1].returned_by if record.attempts else None
        return None if returned is how else f"returned by {returned}, not {how}"

    return check


def _held(result: CallResult, record: CallRecord) -> str | None:
    problem = _expect(Outcome.AGENT_RETURNED, "Redirect", 1, IVR_RETURN_URL)(result, record)
    if problem:
        return problem
    return None if result.said else "the caller heard nothing while the context lagged"


SCENARIOS = (
    Scenario(
        "AGENT escalation: GenerativeAgent asks for a human",
        CallScript(
            legs=(
                AgentLeg(
                    output={
                        "transferType": "AGENT",
                        "currentTaskName": "billing_dispute",
                        "transferVariables": {"reason": "dispute"},
                    }
                ),
            ),
            query={"task": "billing", "iv_accountNumber": "3434"},
        ),
        _expect(Outcome.AGENT_RETURNED, "Dial", 1, AGENT_NUMBER),
    ),
    Scenario(
        "SYSTEM return: back to the IVR with the agent's variables",
        CallScript(
            legs=(
                AgentLeg(
                    output={
                        "transferType": "SYSTEM",
                        "currentTaskName": "balance",
                        "transferVariables": {"balance": "120.50"},
                        "referenceVariables": {"intent": "balance_inquiry"},
                    }
                ),
            )
        ),
        _system_return,
    ),
    Scenario(
        "Handed over twice: SYSTEM back to the IVR, then the IVR hands over again",
        CallScript(
            legs=(
                AgentLeg(output={"transferType": "SYSTEM", "transferVariables": {"step": "1"}}),
                AgentLeg(output={"transferType": "AGENT", "currentTaskName": "billing"}),
            ),
            again=({"task": "billing"},),
        ),
        _handed_off_twice,
    ),
    Scenario(
        "Context still ONGOING after the agent hung up: hold audio, then the route",
        CallScript(legs=(AgentLeg(output={"transferType": "SYSTEM"}),)),
        _held,
        faults={"completionLagMs": 1500},
    ),
    Scenario(
        "Caller hang-up while talking to GenerativeAgent",
        CallScript(legs=(AgentLeg(ending="caller-hangs-up"),)),
        _expect(Outcome.CALLER_HUNG_UP, dials=1),
    ),
    Scenario(
        "Unanswered number: a new transfer, same conversation, dialed again",
        CallScript(legs=(AgentLeg(answer="no-answer"), AgentLeg())),
        _expect(Outcome.AGENT_RETURNED, "Redirect", 2),
    ),
    Scenario(
        "Expired number: never dialed again, a new one is requested",
        CallScript(legs=(AgentLeg(answer="expired"), AgentLeg(output={"transferType": "AGENT"}))),
        _expect(Outcome.AGENT_RETURNED, "Dial", 2, AGENT_NUMBER),
    ),
    Scenario(
        "SIP, API mode, returned by BYE: X-ASAPP-CallTransferId out, context fetched",
        CallScript(legs=(AgentLeg(output=AGENT_OUT),), query={"mode": "sip-api"}),
        _returned_by(SipReturn.BYE, _expect(Outcome.AGENT_RETURNED, "Dial", 0, AGENT_NUMBER)),
    ),
    Scenario(
        "SIP, API mode, returned by REFER to the returnURI, after a busy SIP side (486)",
        CallScript(
            legs=(AgentLeg(answer="busy"), AgentLeg(output=SYSTEM_OUT, sip_return="REFER")),
            query={"mode": "sip-api"},
        ),
        _returned_by(SipReturn.REFER, _expect(Outcome.AGENT_RETURNED, "Redirect", 0)),
    ),
    Scenario(
        "SIP, API mode, returned by INVITE: the caller goes on over the new leg",
        CallScript(
            legs=(AgentLeg(output=AGENT_OUT, sip_return="INVITE"),), query={"mode": "sip-api"}
        ),
        _returned_by(SipReturn.INVITE, _expect(Outcome.AGENT_RETURNED, "Dial", 0, AGENT_NUMBER)),
    ),
    Scenario(
        "SIP headers mode: X-GA-* headers out, X-GA-* Refer-To parameters back, no API call",
        CallScript(
            legs=(AgentLeg(output=SYSTEM_OUT, sip_return="REFER"),),
            query={"mode": "sip-headers", "task": "billing", "iv_accountNumber": "3434"},
        ),
        _returned_by(SipReturn.REFER, _expect(Outcome.AGENT_RETURNED, "Redirect", 0)),
    ),
    Scenario(
        "GenerativeAgent API failing (503): straight to the fallback agent",
        CallScript(),
        _expect(Outcome.FALLBACK, "Dial", 0, AGENT_NUMBER),
        faults={"fail": {"status": 503, "count": 100}},
    ),
)


def demo_settings(sandbox_url: str, store_url: str) -> WebSettings:
    """Embedded defaults: the sandbox as the API, a fictional agent number and IVR."""
    return WebSettings(
        genagent=GenAgentSettings(
            base_url=sandbox_url,
            api_id="demo",
            api_secret=Secret("demo-secret"),
            deadline=2.0,
            attempt_timeout=1.0,
        ),
        twilio=TwilioSettings(
            auth_token=Secret(AUTH_TOKEN),
            agent_destination=Destination.parse(AGENT_NUMBER),
            system_return_url=IVR_RETURN_URL,
            proxy_hops=0,
        ),
        flow=FlowPolicy(
            create_deadline=2.0,
            context_wait=4.0,
            poll_interval=0.2,
            hold_after=0.5,
            sip=SipTransferSettings(
                asapp_uri="sip:genagent@sip.asapp.example.com",
                asapp_domain="sip:headers.asapp.example.com",
                return_uri=DEFAULT_SIP_RETURN_URI,
            ),
        ),
        store_url=store_url,
    )


def run_demo(out: TextIO) -> int:
    """Play every scenario; 0 when all ended as expected."""
    with tempfile.TemporaryDirectory(prefix="genagent-demo-") as tmp:
        store_url = f"sqlite:///{Path(tmp) / 'demo.sqlite3'}"
        with SandboxServer(SandboxConfig(pool_size=20)) as sandbox:
            settings = demo_settings(sandbox.url, store_url)
            store = open_store(store_url)
            with BackgroundServer(create_app(settings, store=store)) as web:
                out.write(
                    f"genagent-adapter demo: GenerativeAgent sandbox on {sandbox.url}, "
                    f"adapter on {web.url}\n"
                )
                simulator = TwilioSimulator(web.url, sandbox.url, AUTH_TOKEN)
                try:
                    passed = sum(
                        _play(n, scenario, simulator, sandbox.url, store, out)
                        for n, scenario in enumerate(SCENARIOS, 1)
                    )
                finally:
                    simulator.close()
            store.close()
    out.write(f"\n{passed} of {len(SCENARIOS)} calls ended as expected.\n")
    return 0 if passed == len(SCENARIOS) else 1


def _play(
    n: int,
    scenario: Scenario,
    simulator: TwilioSimulator,
    sandbox_url: str,
    store: CallStore,
    out: TextIO,
) -> bool:
    httpx.delete(f"{sandbox_url}/sandbox/faults").raise_for_status()
    if scenario.faults:
        httpx.post(f"{sandbox_url}/sandbox/faults", json=scenario.faults).raise_for_status()
    result = simulator.play(scenario.script)
    httpx.delete(f"{sandbox_url}/sandbox/faults").raise_for_status()
    stored = store.get(result.call_sid)
    out.write(f"\n{n}. {scenario.title}\n")
    if stored is None:
        out.write("   FAILED: the adapter kept no record of the call\n")
        return False
    record = CallRecord.from_json(stored.data)
    lines = [(e.at, e.actor, e.text) for e in result.events]
    lines += [
        (at - result.started_at, "adapter", f"{event}: {detail}" if detail else event)
        for at, event, detail in record.timeline
        if event in _ADAPTER_EVENTS
    ]
    for at, actor, text in sorted(lines, key=lambda line: line[0]):
        out.write(f"   {at * 1000:7.0f} ms  {actor:<8} {text}\n")
    attempts = ", ".join(f"#{a.number} {a.outcome}" for a in record.attempts) or "none"
    problem = scenario.check(result, record)
    verdict = "as expected" if problem is None else f"NOT as expected: {problem}"
    out.write(
        f"   => {result.final}; call outcome {record.outcome}; attempts: {attempts}; {verdict}\n"
    )
    return problem is None
