"""Hostile outputContexts through the whole Twilio front: always 200 and TwiML Twilio can parse.

The sandbox serves the outputContext exactly as given (as JSON, so a lone surrogate or a
control character travels as an escape, the way a real API would send it).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from adapter.flow import Route, RouteContext, RouteKind
from adapter.twilio.settings import Destination
from adapter.twilio.sids import new_call_sid
from tests.twilio_stack import RETURN_URL, Stack, call_params

HOSTILE_VARIABLES: dict[str, Any] = {
    "ctrl": "a\x01b\x1bc\x7f",
    "surrogate": "x\ud800y\udfff",
    "nonchar": "p\ufffeq\uffff",
    "breaks": "line1\nline2\r\n\tend",
    "markup": "\"'<b>&amp;]]>",
    "accents": "Zoë; a,b 😀",
    "number": 12.5,
    "flag": False,
    "nothing": None,
    "object": {"k": ["\x02", 1]},
    "bad name": "dropped",
    "nul\x00": "dropped",
    "é": "dropped",
}
# What the adapter passes on: cleaned values, the JSON way for non-strings, bad names gone.
CLEAN_VARIABLES = {
    "ctrl": "abc\x7f",
    "surrogate": "xy",
    "nonchar": "pq",
    "breaks": "line1\nline2\r\n\tend",
    "markup": "\"'<b>&amp;]]>",
    "accents": "Zoë; a,b 😀",
    "number": "12.5",
    "flag": "false",
    "nothing": "",
    "object": '{"k":["\\u0002",1]}',
}
HOSTILE_OUTPUT: dict[str, Any] = {
    "transferType": "AGENT",
    "currentTaskName": "bill\x00ing\ud800",
    "transferVariables": HOSTILE_VARIABLES,
    "referenceVariables": {"ref": "\x0b\x0cr", "": "dropped"},
}


def hand_off_and_return(stack: Stack, call_sid: str, output: dict[str, Any]) -> list[bytes]:
    """Voice webhook, the agent completes with ``output``, the dial result delivered twice."""
    number = parse(stack.post("/twilio/voice", call_params(call_sid))).findtext("Dial/Number")
    assert number
    base = f"{stack.sandbox.url}/sandbox"
    transfer = stack.http.post(f"{base}/calls", json={"transferNumber": number}).json()["id"]
    stack.http.post(
        f"{base}/transfers/{transfer}/complete",
        content=json.dumps(output).encode(),
        headers={"content-type": "application/json"},
    ).raise_for_status()
    action = call_params(call_sid, CallStatus="in-progress", DialCallStatus="completed")
    first = stack.post("/twilio/dial-result?attempt=1", action)
    again = stack.post("/twilio/dial-result?attempt=1", action)
    parse(first), parse(again)
    return [first.content, again.content]


def parse(response: httpx.Response) -> ET.Element:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(response.content)
    assert root.tag == "Response"
    return root


def test_client_destination_gets_the_clean_values_as_parameters(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(agent_destination=Destination.parse("client:desk"))
    first, again = hand_off_and_return(stack, new_call_sid(), HOSTILE_OUTPUT)
    assert first == again
    client = ET.fromstring(first).find("Dial/Client")
    assert client is not None
    params = {p.get("name"): p.get("value") for p in client.findall("Parameter")}
    expected = {f"tv_{name}": value for name, value in CLEAN_VARIABLES.items()}
    expected |= {"transferType": "AGENT", "currentTaskName": "billing", "rv_ref": "r"}
    assert params == expected


def test_sip_destination_headers_carry_the_clean_values(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(agent_destination=Destination.parse("sip:desk@pbx.example.com"))
    first, again = hand_off_and_return(stack, new_call_sid(), HOSTILE_OUTPUT)
    assert first == again
    uri = ET.fromstring(first).findtext("Dial/Sip") or ""
    headers = {k: v[0] for k, v in parse_qs(urlsplit(uri).query, keep_blank_values=True).items()}
    assert headers["X-GA-currentTaskName"] == "billing"
    assert headers["X-GA-tv-ctrl"] == "abc\x7f"
    assert headers["X-GA-tv-object"] == CLEAN_VARIABLES["object"]
    assert not any("bad" in name or "nul" in name for name in headers)


def test_system_return_url_carries_the_clean_values(stack: Stack) -> None:
    output = {**HOSTILE_OUTPUT, "transferType": "SYSTEM"}
    first, again = hand_off_and_return(stack, new_call_sid(), output)
    assert first == again
    redirect = ET.fromstring(first).findtext("Redirect") or ""
    assert redirect.startswith(RETURN_URL.split("?")[0])
    query = {k: v[0] for k, v in parse_qs(urlsplit(redirect).query).items()}
    assert {k[3:]: v for k, v in query.items() if k.startswith("tv_")} == {
        k: v for k, v in CLEAN_VARIABLES.items() if v
    }


@pytest.mark.parametrize("workflow", [None, "WW" + "0" * 32])
def test_queue_destination_is_well_formed(
    make_stack: Callable[..., Stack], workflow: str | None
) -> None:
    stack = make_stack(agent_destination=Destination.parse("queue:desk"), workflow_sid=workflow)
    first, again = hand_off_and_return(stack, new_call_sid(), HOSTILE_OUTPUT)
    assert first == again
    enqueue = ET.fromstring(first).find("Enqueue")
    assert enqueue is not None
    if workflow:
        attributes = json.loads(enqueue.findtext("Task") or "")
        assert attributes["transferVariables"] == CLEAN_VARIABLES
    else:
        assert enqueue.text == "desk"


def test_number_destination_is_well_formed(stack: Stack) -> None:
    first, again = hand_off_and_return(stack, new_call_sid(), HOSTILE_OUTPUT)
    assert first == again
    assert ET.fromstring(first).findtext("Dial/Number") == "+15550100"


def _dirty_router(context: RouteContext) -> Route:
    """A deployment's router that puts a raw control character in a parameter."""
    return Route(RouteKind.AGENT, reason="custom", transfer_variables={"raw": "a\x01b"})


def test_an_answer_that_cannot_be_rendered_becomes_the_fallback_every_time(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(
        agent_destination=Destination.parse("client:desk"),
        router=_dirty_router,
        fallback_say="One moment.",
    )
    first, again = hand_off_and_return(stack, new_call_sid(), {"transferType": "AGENT"})
    assert first == again
    root = ET.fromstring(first)
    assert [verb.tag for verb in root] == ["Say", "Dial"]
    assert root.findtext("Say") == "One moment."
    assert root.findtext("Dial/Client/Identity") == "desk"
