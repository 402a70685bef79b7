"""The Twilio front with the dashboard on, and the calls the history tests play through it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx

from adapter.config import Secret
from adapter.demo.simulator import AgentLeg, CallScript, TwilioSimulator
from adapter.sandbox import SandboxServer
from adapter.serving import BackgroundServer
from adapter.store import open_store
from adapter.web import create_app
from tests.twilio_stack import AUTH_TOKEN, Stack, call_params, stop_stack, twiml, web_settings

DASHBOARD_TOKEN = "dashboard-token-0123456789abcdef"
ACCOUNT_NUMBER = "3434"
BALANCE = "120.50"
# Caller data the simulator and the sandbox put in the calls: none may be shown in clear.
SECRETS = (
    ACCOUNT_NUMBER,
    BALANCE,
    "5551230001",  # the caller
    "5559870000",  # the number called
    "5550100",  # the agent destination
    "999555",  # the sandbox's transfer numbers
)


@dataclass(frozen=True, slots=True)
class PlayedCalls:
    """The call id of each kind of call played."""

    agent: str
    system: str
    hangup: str
    fallback: str


@contextmanager
def dashboard_stack(sandbox: SandboxServer, tmp_path: Path) -> Iterator[Stack]:
    """The app on a real socket with DASHBOARD_TOKEN set and a SQLite store under tmp_path."""
    store_url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    store = open_store(store_url)
    settings = dataclasses.replace(
        web_settings(sandbox.url, store_url), dashboard_token=Secret(DASHBOARD_TOKEN)
    )
    web = BackgroundServer(create_app(settings, store=store)).start()
    http = httpx.Client(timeout=30)
    stack = Stack(
        sandbox,
        web,
        store,
        store_url,
        TwilioSimulator(web.url, sandbox.url, AUTH_TOKEN, http=http),
        http,
    )
    try:
        yield stack
    finally:
        stop_stack(stack)


def play_finished_calls(stack: Stack) -> PlayedCalls:
    """An AGENT escalation, a SYSTEM return, a caller hang-up and an API failure."""
    agent = stack.sim.play(
        CallScript(
            legs=(AgentLeg(output={"transferType": "AGENT", "currentTaskName": "billing"}),),
            query={"iv_accountNumber": ACCOUNT_NUMBER},
        )
    )
    system = stack.sim.play(
        CallScript(
            legs=(
                AgentLeg(
                    output={"transferType": "SYSTEM", "transferVariables": {"balance": BALANCE}}
                ),
            )
        )
    )
    hangup = stack.sim.play(CallScript(legs=(AgentLeg(ending="caller-hangs-up"),)))
    stack.faults(fail={"status": 503, "count": 100})
    try:
        fallback = stack.sim.play(CallScript())
    finally:
        stack.http.delete(f"{stack.sandbox.url}/sandbox/faults").raise_for_status()
    return PlayedCalls(agent.call_sid, system.call_sid, hangup.call_sid, fallback.call_sid)


@dataclass(frozen=True, slots=True)
class InFlight:
    """A call whose transfer number Twilio is dialing: GenerativeAgent has the caller."""

    call_sid: str
    number: str
    action_url: str


def start_call_in_flight(stack: Stack, call_sid: str) -> InFlight:
    """Hand a caller over and stop at the Dial of the transfer number."""
    url = f"{stack.web.url}/twilio/voice"
    dial = twiml(stack.post("/twilio/voice", call_params(call_sid))).find("Dial")
    assert dial is not None
    number = (dial.findtext("Number") or "").strip()
    connected = stack.http.post(
        f"{stack.sandbox.url}/sandbox/calls", json={"transferNumber": number}
    )
    connected.raise_for_status()
    return InFlight(call_sid, number, urljoin(url, dial.get("action", "")))


def finish_call_in_flight(stack: Stack, call: InFlight) -> None:
    """GenerativeAgent hangs up (AGENT), and Twilio posts the Dial's action callback."""
    transfer_id = f"{call.call_sid}-1"
    stack.http.post(
        f"{stack.sandbox.url}/sandbox/transfers/{transfer_id}/complete",
        json={"transferType": "AGENT"},
    ).raise_for_status()
    path = call.action_url.removeprefix(stack.web.url)
    params = call_params(
        call.call_sid, CallStatus="in-progress", DialCallStatus="completed", DialBridged="true"
    )
    twiml(stack.post(path, params))
