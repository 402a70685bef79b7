"""Whatever GenerativeAgent returns, the caller gets a valid answer (property-based).

Generated outputContexts and API bodies go through the real path: the client's
``interpret`` -> ``route_for`` -> the TwiML renderer of every destination kind, and
``route_variables`` -> the Setvar bytes panoramisk writes. Deterministic (derandomized,
no example database) so that CI sees the same examples on every run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from panoramisk.actions import Action

from adapter.asterisk.framing import AMI_LINE_MAX, SETVAR_VALUE_MAX, setvar_action
from adapter.asterisk.worker import route_variables
from adapter.config import Secret
from adapter.flow import Route, RouteKind
from adapter.flow.routing import route_for
from adapter.genagent import CallTransfer, MalformedResponseError
from adapter.genagent.protocol import interpret
from adapter.genagent.values import clean_text, fit_utf8
from adapter.twilio.settings import Destination, TwilioSettings
from adapter.twilio.twiml import TwimlRenderer
from tests.api_values_strategies import (
    any_char,
    json_values,
    long_text,
    output_blobs,
    output_contexts,
    text,
)
from tests.genagent_helpers import transfer_body


@pytest.fixture(scope="module", autouse=True)
def quiet_warnings() -> Iterator[None]:
    """Thousands of skipped names and cut headers are expected here: keep the run fast."""
    loggers = [logging.getLogger(name) for name in ("adapter.genagent", "adapter.twilio")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def deterministic(examples: int) -> Any:
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def wire(body: Any) -> httpx.Response:
    """A 200 as the API would send ``body``: JSON, lone surrogates as escapes."""
    return httpx.Response(200, content=json.dumps(body).encode())


def completed_with(output: Any) -> CallTransfer:
    return interpret(wire(transfer_body(status="COMPLETED", outputContext=output)))


# --- where the caller may go -----------------------------------------------------------------

RETURN_URL = "https://ivr.example.com/return?menu=main"
DESTINATIONS = {
    "number": ("+15550100", None),
    "sip": ("sip:desk@pbx.example.com", None),
    "client": ("client:desk", None),
    "queue": ("queue:desk", None),
    "taskrouter": ("queue:desk", "WW" + "0" * 32),
}


def renderer(
    destination: str, workflow: str | None = None, url: str | None = None
) -> TwimlRenderer:
    return TwimlRenderer(
        TwilioSettings(
            auth_token=Secret("token"),
            agent_destination=Destination.parse(destination),
            workflow_sid=workflow,
            system_return_url=url,
        )
    )


# AGENT and fallback routes go to the destination; SYSTEM routes to the return URL or a goodbye.
AGENT_RENDERERS = [renderer(dest, workflow) for dest, workflow in DESTINATIONS.values()]
SYSTEM_RENDERERS = [renderer("+15550100", url=RETURN_URL), renderer("+15550100")]
_AGENT_VERB = {"number": "Dial", "sip": "Dial", "client": "Dial", "queue": "Enqueue"}


def expected_kind(transfer_type: Any) -> RouteKind:
    normalized = clean_text(transfer_type).strip().upper() if isinstance(transfer_type, str) else ""
    return {"AGENT": RouteKind.AGENT, "SYSTEM": RouteKind.SYSTEM}.get(
        normalized, RouteKind.FALLBACK
    )


def check_twiml(route: Route) -> None:
    """Every document parses, with the verbs the route's kind calls for and its values."""
    if route.kind is RouteKind.SYSTEM:
        for system in SYSTEM_RENDERERS:
            verbs = [verb.tag for verb in ET.fromstring(system.render(route))]
            url = system.settings.system_return_url
            assert verbs == (["Redirect"] if url else ["Say", "Hangup"])
        return
    for agent in AGENT_RENDERERS:
        root = ET.fromstring(agent.render(route))
        verb = _AGENT_VERB[agent.settings.agent_destination.kind.value.lower()]
        assert [v.tag for v in root] == (
            ["Say", verb] if route.kind is RouteKind.FALLBACK else [verb]
        )
        client = root.find("Dial/Client")
        if client is not None:
            params = {p.get("name"): p.get("value") for p in client.findall("Parameter")}
            assert params == client_parameters(route)


def client_parameters(route: Route) -> dict[str, str]:
    expected = {f"tv_{k}": v for k, v in route.transfer_variables.items()}
    expected |= {f"rv_{k}": v for k, v in route.reference_variables.items()}
    if route.transfer_type:
        expected["transferType"] = route.transfer_type
    if route.current_task_name:
        expected["currentTaskName"] = route.current_task_name
    return expected


def check_route_and_twiml(output: dict[str, Any]) -> None:
    route = route_for(completed_with(output))
    assert route.kind is expected_kind(output["transferType"])
    check_twiml(route)


@deterministic(600)
@given(output_contexts)
def test_any_output_context_routes_by_its_type_and_renders_for_every_destination(
    output: dict[str, Any],
) -> None:
    check_route_and_twiml(output)


@deterministic(3600)
@given(output_blobs)
def test_many_output_contexts_route_by_their_type_and_render(output: dict[str, Any]) -> None:
    check_route_and_twiml(output)


api_bodies = st.one_of(
    st.binary(max_size=64),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.builds(
        lambda body, key, value: json.dumps({**body, key: value}).encode(),
        st.just(transfer_body(status="COMPLETED", outputContext={"transferType": "AGENT"})),
        st.sampled_from(["outputContext", "phoneNumber", "status", "id", "completedAt"]),
        json_values,
    ),
    # a valid body cut short
    output_blobs.map(lambda o: json.dumps(transfer_body(outputContext=o)).encode()[:-2]),
    # a valid body with a hostile outputContext
    output_blobs.map(lambda o: json.dumps(transfer_body(outputContext=o)).encode()),
)


@deterministic(2500)
@given(api_bodies)
def test_any_api_body_is_a_transfer_or_a_malformed_response(content: bytes) -> None:
    try:
        transfer = interpret(httpx.Response(200, content=content))
    except MalformedResponseError:
        return
    check_twiml(route_for(transfer))


# --- the Asterisk side: Setvar actions as panoramisk writes them ------------------------------


@pytest.fixture(scope="module", autouse=True)
def event_loop_for_actions() -> Iterator[None]:
    """panoramisk's Action makes a Future: give it a loop that is not running."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    asyncio.set_event_loop(None)
    loop.close()


def setvar_bytes(channel: str, name: str, value: str) -> bytes:
    action, _ = setvar_action(channel, name, value)
    return str(Action(action)).encode("utf-8")


def carried(value: str) -> str:
    """What Asterisk can hold of a value the parse already cleaned."""
    return fit_utf8(value.replace("\r", " ").replace("\n", " "), SETVAR_VALUE_MAX)


def check_setvar_actions(output: dict[str, Any]) -> None:
    route = route_for(completed_with(output))
    for name, value in route_variables(route).items():
        assert name.replace("_", "").isalnum()
        assert name.isascii()
        wire_bytes = setvar_bytes("1700000000.12", name, value)
        assert wire_bytes.endswith(b"\r\n\r\n")
        lines = wire_bytes[:-4].split(b"\r\n")
        assert all(b"\r" not in line and b"\n" not in line for line in lines)
        assert all(len(line) + 2 <= AMI_LINE_MAX for line in lines)
        assert b"Variable: " + name.encode() in lines
        [value_line] = [line for line in lines if line.startswith(b"Value: ")]
        assert value_line.removeprefix(b"Value: ").decode("utf-8") == carried(value)


@deterministic(500)
@given(output_contexts)
def test_any_output_context_becomes_safe_setvar_actions(output: dict[str, Any]) -> None:
    check_setvar_actions(output)


@deterministic(2800)
@given(output_blobs)
def test_many_output_contexts_become_safe_setvar_actions(output: dict[str, Any]) -> None:
    check_setvar_actions(output)


@deterministic(300)
@given(st.one_of(text, long_text, st.text(any_char, max_size=1500)), text)
def test_setvar_never_breaks_the_framing_whatever_the_value(value: str, name: str) -> None:
    wire_bytes = setvar_bytes("PJSIP/trunk-00000001", name, value)
    lines = wire_bytes[:-4].split(b"\r\n")
    assert wire_bytes.endswith(b"\r\n\r\n")
    assert all(b"\r" not in line and b"\n" not in line for line in lines)
    assert all(len(line) + 2 <= AMI_LINE_MAX for line in lines)
    assert len(lines) == 5  # Action, ActionID, Channel, Value, Variable
