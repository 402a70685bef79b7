"""The AMI session's own reading and writing (adapter/asterisk/connection.py): messages
parse exactly as panoramisk's Message.from_line would, an action's answer is complete
when panoramisk's Action would call it complete, and actions go out in one write."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from panoramisk.message import Message

from adapter.asterisk.connection import OneShotManager, _Protocol
from adapter.asterisk.parsing import parse_message

MESSAGES = [
    "Response: Success\r\nActionID: a-1\r\nMessage: Authentication accepted",
    "Response: Error\r\nActionID: a-2\r\nMessage: No such channel",
    "Response: Success\r\nActionID: a-3\r\nVariable: GA_TASK\r\nValue: billing",
    # A list item with repeated headers, and a name repeated in another case.
    "Event: Status\r\nPrivilege: Call\r\nChannel: Local/100@ivr-0001;2\r\nUniqueid: 17.1\r\n"
    "Variable: GA_TASK=billing\r\nVariable: GA_IV_name=Doe, John\r\nVariable: X=a: b\r\n"
    "ActionID: a-4\r\nUniqueID: other",
    "Event: UserEvent\r\nUserEvent: GenerativeAgentTransfer\r\nUniqueid: 17.1\r\n"
    "Uniqueid: spoofed\r\nContent: header named content",
    "Response: Follows\r\nActionID: a-5\r\nOutput: line\r\n\r\n--END COMMAND--",
    "Response: Fail\r\nActionID: a-6\r\nMessage: nope\r\nbody line",
    "Event: AGIExecComplete\r\nResult: 200%20result%3D1",
    "Asterisk Call Manager/9.0.0\r\nResponse: Success\r\nMessage: banner first",
    "no headers at all",
    "Key: value but neither Event nor Response",
    "Event: Empty\r\nValue: \r\nOther:novalue",
]


@pytest.mark.parametrize("text", MESSAGES)
def test_a_message_parses_as_panoramisk_parses_it(text: str) -> None:
    ours, theirs = parse_message(text), Message.from_line(text)
    if theirs is None:
        assert ours is None
        return
    assert isinstance(ours, Message)
    assert ours._store == theirs._store
    assert list(ours.items()) == list(theirs.items())
    for key in ("Event", "response", "UNIQUEID", "Variable", "missing", "content", "result"):
        assert ours.get(key) == theirs.get(key)
        assert ours.get(key, "d") == theirs.get(key, "d")
        assert (key in ours) == (key in theirs)
    assert ours.success == theirs.success
    assert ours.id == theirs.id


class _Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        pass


def _protocol() -> tuple[_Protocol, _Transport, list[Message]]:
    dispatched: list[Message] = []
    manager = OneShotManager(loop=asyncio.get_running_loop(), ping_delay=10**9)
    manager.register_event("UserEvent", lambda _manager, event: dispatched.append(event))
    manager.wanted_events = frozenset({"UserEvent"})
    protocol = _Protocol(manager)
    transport = _Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    return protocol, transport, dispatched


def _answer(protocol: _Protocol, action_id: str, *messages: str) -> None:
    protocol.data_received(
        "".join(f"{m}\r\nActionID: {action_id}\r\n\r\n" for m in messages).encode()
    )


def test_actions_go_out_in_one_write_each_with_its_action_id() -> None:
    async def scenario() -> list[Any]:
        protocol, transport, _ = _protocol()
        futures = protocol.send_actions(
            [
                {"Action": "Setvar", "Channel": "c", "Variable": "A", "Value": "1"},
                {"Action": "Redirect", "Channel": "c", "Context": "x", "Exten": "s"},
            ]
        )
        assert len(transport.writes) == 1
        sent = transport.writes[0].decode().split("\r\n\r\n")
        assert sent[-1] == ""
        assert len(sent) == 3
        ids = [
            line.split(": ", 1)[1]
            for action in sent[:2]
            for line in action.split("\r\n")
            if line.startswith("ActionID: ")
        ]
        assert len(set(ids)) == 2
        assert sent[0].startswith("Action: Setvar\r\nChannel: c\r\nVariable: A\r\nValue: 1")
        _answer(protocol, ids[1], "Response: Success\r\nMessage: Redirect successful")
        _answer(protocol, ids[0], "Response: Error\r\nMessage: No such channel")
        return [await future for future in futures]

    first, second = asyncio.run(scenario())
    assert first["Message"] == "No such channel"
    assert not first.success
    assert second["Message"] == "Redirect successful"
    assert second.success


def test_a_list_answer_completes_with_its_complete_event() -> None:
    async def scenario() -> tuple[list[Message], bool]:
        protocol, transport, dispatched = _protocol()
        [future] = protocol.send_actions([{"Action": "Status", "Channel": "c"}])
        action_id = transport.writes[0].decode().split("ActionID: ")[1].split("\r\n")[0]
        _answer(
            protocol,
            action_id,
            "Response: Success\r\nEventList: start\r\nMessage: Channel status will follow",
            "Event: Status\r\nChannel: c\r\nVariable: A=1\r\nVariable: B=2",
        )
        assert not future.done()
        _answer(protocol, action_id, "Event: StatusComplete\r\nEventList: Complete\r\nItems: 1")
        assert not protocol.responses  # forgotten once complete
        # An event after the answer is an event again (and only wanted ones dispatched).
        protocol.data_received(
            b"Event: UserEvent\r\nUserEvent: X\r\n\r\nEvent: Newstate\r\nChannel: c\r\n\r\n"
        )
        return await future, len(dispatched) == 1

    answer, dispatched_one = asyncio.run(scenario())
    assert [m.get("Event") or m.get("Response") for m in answer] == [
        "Success",
        "Status",
        "StatusComplete",
    ]
    assert answer[1]["Variable"] == ["A=1", "B=2"]
    assert dispatched_one


def test_an_error_to_a_list_action_completes_at_once() -> None:
    async def scenario() -> Message:
        protocol, transport, _ = _protocol()
        [future] = protocol.send_actions([{"Action": "Status", "Channel": "gone"}])
        action_id = transport.writes[0].decode().split("ActionID: ")[1].split("\r\n")[0]
        _answer(protocol, action_id, "Response: Error\r\nMessage: No such channel")
        assert not protocol.responses
        return await future

    assert asyncio.run(scenario())["Message"] == "No such channel"


def test_closing_drops_what_is_unanswered_and_queues_nothing_to_resend() -> None:
    async def scenario() -> None:
        protocol, _, _ = _protocol()
        futures = protocol.send_actions([{"Action": "Redirect", "Channel": "c"}])
        protocol.close()
        assert not protocol.responses
        assert not protocol._manager.awaiting_actions
        assert not futures[0].done()  # its pipeline times out, as with panoramisk
        futures[0].cancel()

    asyncio.run(scenario())
