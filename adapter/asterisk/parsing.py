"""AMI messages as they come off the wire, and each action's answer as it arrives.

The same results as panoramisk's Message.from_line and Action (tests/test_ami_protocol.py
compares them), without its header-by-header MutableMapping updates, uuids and re-send
bookkeeping: a session reads every message through here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from panoramisk.message import Message

EOL = "\r\n"


class AmiMessage(Message):  # type: ignore[misc]
    """panoramisk's Message (same headers, same case-insensitive reads), built straight
    from the wire instead of header by header through MutableMapping.update."""

    def get(self, key: str, default: Any = None) -> Any:
        item = self._store.get(key.lower())
        return default if item is None else item[1]

    @property
    def success(self) -> bool:
        """An event, or a Success / Follows / Goodbye answer (as panoramisk's)."""
        store = self._store
        if "event" in store:
            return True
        item = store.get("response")
        return item is not None and item[1] in self.success_responses


_HAS_BODY = ("Response: Follows", "Response: Fail")


def parse_message(text: str) -> AmiMessage | None:
    """panoramisk's Message.from_line, to the same result: a repeated header becomes a
    list, ``Result`` is unquoted, a Follows/Fail answer keeps its last line as content;
    None unless there is an Event or a Response."""
    lines = text.split(EOL)
    content = ""
    if lines[0].startswith(_HAS_BODY):
        content = lines.pop()
        while not content and lines:
            content = lines.pop()
    # Straight into the case-insensitive store; a name met again in another case (never
    # from Asterisk) takes panoramisk's own two steps instead.
    store: dict[str, tuple[str, Any]] = {}
    for line in lines:
        key, sep, value = line.partition(": ")
        if not sep:
            continue
        lower = key.lower()
        if lower == "result":
            value = unquote(value).strip()
        old = store.get(lower)
        if old is None:
            store[lower] = (key, value)
        elif old[0] != key:
            return _parse_in_two_steps(lines, content)
        elif isinstance(old[1], list):
            old[1].append(value)
        else:
            store[lower] = (key, [old[1], value])
    event, response = store.get("event"), store.get("response")
    if (event is None or event[0] != "Event") and (response is None or response[0] != "Response"):
        return None
    return _message(store, content)


def _parse_in_two_steps(lines: list[str], content: str) -> AmiMessage | None:
    headers: dict[str, Any] = {}
    for line in lines:
        key, sep, value = line.partition(": ")
        if not sep:
            continue
        if key.lower() == "result":
            value = unquote(value).strip()
        if key in headers:
            old = headers[key]
            if isinstance(old, list):
                old.append(value)
            else:
                headers[key] = [old, value]
        else:
            headers[key] = value
    if "Event" not in headers and "Response" not in headers:
        return None
    return _message({key.lower(): (key, value) for key, value in headers.items()}, content)


def _message(store: dict[str, tuple[str, Any]], content: str) -> AmiMessage:
    message: AmiMessage = AmiMessage.__new__(AmiMessage)
    store["content"] = ("content", content)
    message._store = store
    message.manager = None
    return message


class PendingAnswer:
    """An action sent, and its answer as it arrives: panoramisk's Action, minus the
    case-insensitive dict, the uuid and the re-send bookkeeping (no action is re-sent)."""

    __slots__ = ("action", "future", "messages", "multi")

    def __init__(self, action: Mapping[str, Any], future: asyncio.Future[Any]) -> None:
        self.action = action
        self.future = future
        self.messages: list[AmiMessage] = []
        self.multi: bool | None = None

    def add(self, message: AmiMessage) -> bool:
        """Take one message of the answer; True once the answer is complete."""
        messages = self.messages
        messages.append(message)
        if self.multi is None:
            self.multi = _is_list_answer(message, self.action)
        if not self.multi:
            if not self.future.done():
                self.future.set_result(messages[0])
            return True
        if len(messages) > 1 and _ends_list(message):
            if not self.future.done():
                self.future.set_result(messages)
            return True
        return False


def _is_list_answer(first: AmiMessage, action: Mapping[str, Any]) -> bool:
    """Whether an action's first answer opens a list (panoramisk's Action.multi)."""
    text = str(first.get("Message", "")).lower()
    return (
        first.get("SubEvent") == "Start"
        or first.get("EventList") == "start"
        or "will follow" in text
        or (text.startswith("added") and text.endswith("to queue"))
        or (text.endswith("successfully queued") and action.get("Async") != "false")
    )


def _ends_list(message: AmiMessage) -> bool:
    """Whether a message ends a list answer (panoramisk's Action.completed)."""
    return (
        str(message.get("Event", "")).endswith("Complete")
        or message.get("SubEvent") in ("End", "Exec")
        or message.get("Response") in ("Success", "Error", "Fail", "Failure")
    )
