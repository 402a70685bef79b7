"""Values from the GenerativeAgent API: cleaned once at the parse, refused whole when unusable."""

from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pytest

from adapter.asterisk.worker import route_variables
from adapter.config import Secret
from adapter.flow import Dial, Route, RouteKind
from adapter.genagent import GenAgentError, MalformedResponseError, ServerError
from adapter.genagent.models import parse_call_transfer
from adapter.genagent.values import (
    clean_text,
    dialable_number,
    fit_utf8,
    is_variable_name,
    variable_value,
)
from adapter.observe.masking import mask_name
from adapter.twilio.settings import Destination, TwilioSettings
from adapter.twilio.twiml import RenderError, TwimlRenderer
from tests.genagent_helpers import DRIVERS, FAST_POLICY, make_settings, reply, transfer_body

# --- text ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("plain", "plain"),
        ("a\x00b\x01c\x08d\x0be\x0cf\x0eg\x1fh", "abcdefgh"),
        ("tab\tlf\ncr\r", "tab\tlf\ncr\r"),
        ("x\ufffey\uffffz", "xyz"),
        ("lone \ud800 high, lone \udfff low", "lone  high, lone  low"),
        ("Zoë, «quoted»; 😀 & <b>", "Zoë, «quoted»; 😀 & <b>"),
        ("\x7f\x85 stay", "\x7f\x85 stay"),
    ],
)
def test_clean_text_removes_only_what_xml_cannot_carry(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("as is", "as is"),
        ("bad\x01", "bad"),
        (None, ""),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-42, "-42"),
        (1.5, "1.5"),
        (1e16, "1e+16"),
        (10**300, "1" + "0" * 300),
        ({"b": 2, "a": [1, None, "x"]}, '{"a":[1,null,"x"],"b":2}'),
        (["é", "\x01", "\ud800"], '["\\u00e9","\\u0001","\\ud800"]'),
        ({}, "{}"),
    ],
)
def test_variable_values_are_written_the_json_way(value: Any, text: str) -> None:
    assert variable_value(value) == text


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {"a": [float("-inf")]}])
def test_a_value_json_cannot_write_is_refused(value: Any) -> None:
    with pytest.raises(ValueError, match=r"finite|Out of range"):
        variable_value(value)


@pytest.mark.parametrize(
    "name", ["a", "accountNumber", "account_id", "account-id", "v1.2", "_", "9lives", "x" * 64]
)
def test_accepted_variable_names(name: str) -> None:
    assert is_variable_name(name)


@pytest.mark.parametrize(
    "name",
    ["", "x" * 65, "has space", "semi;colon", "a=b", "new\nline", "tab\t", "é", "a:b", "a/b", 5],
)
def test_refused_variable_names(name: object) -> None:
    assert not is_variable_name(name)


@pytest.mark.parametrize(
    ("value", "number"),
    [
        ("+19995550100", "+19995550100"),
        ("  +19995550100\t", "+19995550100"),
        ("+12345678", "+12345678"),
        ("+123456789012345", "+123456789012345"),
    ],
)
def test_dialable_numbers(value: str, number: str) -> None:
    assert dialable_number(value) == number


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "19995550100",
        "+1234567",
        "+1234567890123456",
        "+1 999 555 0100",
        "+1999555\x010100",
        "+19995550100\x00",
        "+1999-555-0100",
        "+١٩٩٩٥٥٥٠١٠٠",  # Arabic-Indic digits are digits to Python, not to a carrier
        "++19995550100",
        "+19995550100;ext=1",
        "sip:+19995550100@example.com",
    ],
)
def test_implausible_numbers_are_never_dialed_nor_repaired(value: str | None) -> None:
    assert dialable_number(value) is None


@pytest.mark.parametrize(
    ("text", "limit", "fitted"),
    [("abc", 3, "abc"), ("abc", 2, "ab"), ("aé", 2, "a"), ("aé", 3, "aé"), ("😀😀", 7, "😀")],
)
def test_fit_utf8_never_splits_a_character(text: str, limit: int, fitted: str) -> None:
    assert fit_utf8(text, limit) == fitted


# --- the parse ------------------------------------------------------------------------------


def completed(output: Any, **phone: Any) -> dict[str, Any]:
    body = transfer_body(status="COMPLETED", outputContext=output)
    body["phoneNumber"].update(phone)
    return body


def test_the_parse_cleans_every_output_text_once() -> None:
    transfer = parse_call_transfer(
        completed(
            {
                "transferType": "AGENT\x00",
                "currentTaskName": "bill\ud800ing\x1b",
                "transferVariables": {"reason": "dis\x01pute\ufffe", "count": 3, "ok": True},
                "referenceVariables": {"nested": {"k": ["\x02"]}, "none": None},
            }
        )
    )
    output = transfer.output_context
    assert output is not None
    assert output.transfer_type == "AGENT"
    assert output.current_task_name == "billing"
    assert output.transfer_variables == {"reason": "dispute", "count": "3", "ok": "true"}
    assert output.reference_variables == {"nested": '{"k":["\\u0002"]}', "none": ""}


def test_unusable_names_are_skipped_with_a_warning_without_the_value(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "4111111111111111"
    names = {"good": "1", "bad name": secret, "+15551234567": secret, "x\n" * 50: secret}
    with caplog.at_level(logging.WARNING, logger="adapter.genagent"):
        transfer = parse_call_transfer(
            completed({"transferType": "SYSTEM", "transferVariables": names})
        )
    assert transfer.output_context is not None
    assert transfer.output_context.transfer_variables == {"good": "1"}
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 3
    assert all("transferVariables" in line for line in warnings)
    assert all(secret not in line and "\n" not in line for line in warnings)
    assert all(len(line) < 160 for line in warnings)
    assert not any("5551234567" in line for line in warnings)


def test_the_transfer_number_is_kept_as_sent_but_trimmed() -> None:
    transfer = parse_call_transfer(transfer_body())
    assert transfer.transfer_number is not None
    raw = f" {transfer.transfer_number}\x01 "
    again = parse_call_transfer(completed(None, transferNumber=raw))
    assert again.transfer_number == transfer.transfer_number + "\x01"
    assert dialable_number(again.transfer_number) is None


@pytest.mark.parametrize(
    "body",
    [
        completed({"transferType": "AGENT", "transferVariables": {"x": float("nan")}}),
        completed({"transferType": "AGENT", "referenceVariables": {"x": [float("inf")]}}),
    ],
)
def test_values_json_cannot_write_make_the_transfer_malformed(body: dict[str, Any]) -> None:
    with pytest.raises(MalformedResponseError):
        parse_call_transfer(body)


# --- the client: only GenAgentError, whatever the body ------------------------------------

_DEEP = b'{"id":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
_DEEP_IN_VARIABLE = json.dumps(
    completed({"transferType": "AGENT", "transferVariables": {"deep": "PLACEHOLDER"}})
).replace('"PLACEHOLDER"', "[" * 5000 + "]" * 5000)


@pytest.mark.parametrize(
    "content",
    [
        _DEEP,
        _DEEP_IN_VARIABLE.encode(),
        b'{"id": ' + b"9" * 5000 + b"}",
        b'{"id": "t-1", "status": "ACTIVE", "x": 1e400}',
        b'{"id": NaN}',
        b'{"id": "t-1", "n": -Infinity}',
        b'{"id": "t-\xff\xfe"}',
        b"\xef\xbb\xbf" + json.dumps(transfer_body()).encode()[:-1],
        b"[]",
        b'"text"',
        b"null",
        b"",
    ],
    ids=lambda c: repr(c[:20]),
)
@pytest.mark.parametrize("mode", sorted(DRIVERS))
def test_every_unusable_body_is_malformed_response(mode: str, content: bytes) -> None:
    driver = DRIVERS[mode](make_settings(), _script(reply(200, content=content)), FAST_POLICY)
    try:
        with pytest.raises(MalformedResponseError):
            driver.get("t-1")
    finally:
        driver.close()


@pytest.mark.parametrize("depth", [900, 980, 990, 1000, 1010, 1100])
@pytest.mark.parametrize("where", ["variable", "unknown field"])
@pytest.mark.parametrize("mode", sorted(DRIVERS))
def test_nesting_near_the_recursion_limit_is_a_transfer_or_malformed(
    mode: str, where: str, depth: int
) -> None:
    body = transfer_body(
        status="COMPLETED",
        outputContext={"transferType": "AGENT", "transferVariables": {"deep": "PLACEHOLDER"}},
    )
    if where == "unknown field":
        body["outputContext"]["transferVariables"] = {}
        body["unknown"] = "PLACEHOLDER"
    content = json.dumps(body).replace('"PLACEHOLDER"', "[" * depth + "]" * depth).encode()
    driver = DRIVERS[mode](make_settings(), _script(reply(200, content=content)), FAST_POLICY)
    try:
        transfer = driver.get("t-1")
    except MalformedResponseError:
        return
    finally:
        driver.close()
    assert transfer.output_context is not None
    assert transfer.output_context.transfer_type == "AGENT"


def test_a_deep_but_parseable_value_becomes_compact_json() -> None:
    body = json.dumps(
        completed({"transferType": "AGENT", "transferVariables": {"deep": "PLACEHOLDER"}})
    ).replace('"PLACEHOLDER"', "[" * 200 + "]" * 200)
    handler = _script(reply(200, content=body.encode()))
    driver = DRIVERS["async"](make_settings(), handler, FAST_POLICY)
    try:
        transfer = driver.get("t-1")
    finally:
        driver.close()
    assert transfer.output_context.transfer_variables == {"deep": "[" * 200 + "]" * 200}


@pytest.mark.parametrize(
    "content", [_DEEP, b'{"error": {"message": ' + b"[" * 5000 + b"]" * 5000 + b"}}"]
)
def test_an_unusable_error_body_still_gives_the_status_error(content: bytes) -> None:
    driver = DRIVERS["sync"](
        make_settings(), _script(*[reply(500, content=content)] * 4), FAST_POLICY
    )
    try:
        with pytest.raises(ServerError) as caught:
            driver.get("t-1")
    finally:
        driver.close()
    assert isinstance(caught.value, GenAgentError)


def test_error_message_text_is_bounded_and_clean() -> None:
    body = {"error": {"code": "400-01", "message": "bad\r\nforged line\ud800" + "x" * 5000}}
    content = json.dumps(body).encode()  # the wire form: "\ud800" as an escape
    driver = DRIVERS["sync"](make_settings(), _script(reply(400, content=content)), FAST_POLICY)
    try:
        with pytest.raises(GenAgentError) as caught:
            driver.get("t-1")
    finally:
        driver.close()
    message = str(caught.value)
    assert "\n" not in message
    assert "\ud800" not in message
    assert len(message) < 700


def _script(*steps: Any) -> Any:
    queue = list(steps)

    def handler(request: httpx.Request) -> httpx.Response:
        step = queue.pop(0) if len(queue) > 1 else queue[0]
        response: httpx.Response = step(request)
        return response

    return handler


# --- rendering ------------------------------------------------------------------------------


def renderer(destination: str = "+15550100") -> TwimlRenderer:
    return TwimlRenderer(
        TwilioSettings(auth_token=Secret("t"), agent_destination=Destination.parse(destination))
    )


def test_the_fallback_document_is_rendered_once_and_well_formed() -> None:
    document = renderer("sip:desk@pbx.example.com").fallback_document
    root = ET.fromstring(document)
    assert [verb.tag for verb in root] == ["Say", "Dial"]
    assert root.findtext("Dial/Sip") == "sip:desk@pbx.example.com"


@pytest.mark.parametrize("number", ["+1999555\x000100", " +19995550100 x", "+1 999", ""])
def test_a_transfer_number_that_is_not_e164_is_never_rendered(number: str) -> None:
    with pytest.raises(RenderError):
        renderer().render(Dial(1, "t-1", number, 15))


def test_a_trimmed_transfer_number_is_dialed() -> None:
    root = ET.fromstring(renderer().render(Dial(1, "t-1", " +19995550100\n", 15)))
    assert root.findtext("Dial/Number") == "+19995550100"


@pytest.mark.parametrize("destination", ["client:desk", "queue:q", "+15550100"])
def test_a_route_a_custom_router_filled_with_bad_characters_is_refused(destination: str) -> None:
    route = Route(
        RouteKind.AGENT,
        reason="custom",
        transfer_type="AGENT\x01",
        transfer_variables={"v": "\ud800"},
    )
    # Queues and numbers carry no variables in XML text: only the client's <Parameter>s do.
    if destination.startswith("client:"):
        with pytest.raises(RenderError):
            renderer(destination).render(route)
    else:
        ET.fromstring(renderer(destination).render(route))


def test_the_echoed_input_context_keeps_every_name_the_adapter_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = transfer_body(
        inputContext={"taskName": "t", "inputVariables": {"caller name": "Zoë\x01", "n": 5}}
    )
    with caplog.at_level(logging.WARNING, logger="adapter.genagent"):
        transfer = parse_call_transfer(body)
    assert transfer.input_context is not None
    assert transfer.input_context.input_variables == {"caller name": "Zoë", "n": "5"}
    assert caplog.records == []


def test_route_variables_never_raise_on_what_a_custom_router_returns() -> None:
    odd: dict[str, Any] = {"n": 5, "f": float("nan"), "o": {"k": [1]}, "s": "a,b;c", "x.y-z": None}
    route = Route(RouteKind.FALLBACK, reason="custom", transfer_variables=odd)
    variables = route_variables(route)
    assert variables["GA_TV_n"] == "5"
    assert variables["GA_TV_f"] == ""
    assert variables["GA_TV_o"] == '{"k":[1]}'
    assert variables["GA_TV_s"] == "a,b;c"
    assert variables["GA_TV_x_y_z"] == ""
    assert variables["GA_FALLBACK_REASON"] == "custom"


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("bad name", "'bad name'"),
        ("a\nb\ud800", r"'a\nb\ud800'"),
        ("x" * 50, "'" + "x" * 40 + "'..."),
        (7, "'int'"),
    ],
)
def test_mask_name_is_bounded_and_escaped(name: object, shown: str) -> None:
    assert mask_name(name) == shown


def test_mask_name_hides_numbers() -> None:
    assert "5551234567" not in mask_name("+15551234567")
