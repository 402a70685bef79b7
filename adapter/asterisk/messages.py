"""AMI actions and answers as plain data: building actions, reading answers, the errors.

No I/O here: :mod:`adapter.asterisk.ami` sends the actions and awaits the answers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from panoramisk.message import Message

from adapter.asterisk.framing import SETVAR_VALUE_MAX, setvar_action
from adapter.observe.masking import safe_id

log = logging.getLogger("adapter.asterisk")

# The longest value Getvar answers (manager.c reads it into a 1,024-byte buffer).
GETVAR_MAX = 1023
# What Asterisk answers when the channel is gone or going: expected on live calls.
_CHANNEL_GONE = ("no such channel", "channel does not exist", "channel not up")


class AmiError(Exception):
    """An AMI action failed (Response: Error), or the session is unusable."""


class ChannelGone(AmiError):
    """The channel hung up or never existed: expected on live calls, handled quietly."""


class AmiTimeout(AmiError):
    """An action got no complete answer in time."""


class SessionClosed(AmiError):
    """The connection is gone."""


def redirect_action(
    channel: str, context: str, exten: str = "s", priority: int = 1
) -> dict[str, Any]:
    """The Redirect action of ``channel`` to ``context,exten,priority``."""
    return {
        "Action": "Redirect",
        "Channel": channel,
        "Context": context,
        "Exten": exten,
        "Priority": str(priority),
    }


def fitted_setvar(channel: str, variable: str, value: str) -> dict[str, Any]:
    """The Setvar action, its value fit to one AMI line (a warning when it was cut)."""
    action, cut = setvar_action(channel, variable, value)
    if cut:
        log.warning(
            "%s: value cut to %d bytes to fit one AMI line", safe_id(variable), SETVAR_VALUE_MAX
        )
    return action


def value_of(answer: Any) -> str:
    """A Getvar answer's value ('' when unset)."""
    value = answer.get("Value") or ""
    return "" if value == "(null)" else str(value)


def raise_error(answer: Any) -> Any:
    """``answer``, unless it is an AmiError: then it is raised."""
    if isinstance(answer, AmiError):
        raise answer
    return answer


def raise_first_error(answers: Sequence[Any]) -> None:
    """Raise the first ChannelGone / AmiError among :meth:`AmiSession.pipeline` answers."""
    for answer in answers:
        raise_error(answer)


def checked(action: dict[str, Any], answer: Any) -> Any:
    """``answer``, or the ChannelGone / AmiError its error answer means."""
    if is_ok(answer):
        return answer
    message = error_message(answer)
    if any(text in message.lower() for text in _CHANNEL_GONE):
        return ChannelGone(message)
    return AmiError(f"{action['Action']} failed: {message}")


def is_ok(answer: Any) -> bool:
    """Whether an answer (or the first message of a list answer) says Success."""
    first = answer[0] if isinstance(answer, list) and answer else answer
    return bool(getattr(first, "success", False))


def error_message(answer: Any) -> str:
    """The Message header of an answer (or of the first message of a list answer)."""
    first = answer[0] if isinstance(answer, list) and answer else answer
    return str(first.get("Message", "")) if isinstance(first, Message) else repr(first)


def events_named(answer: Any, name: str) -> list[Message]:
    """The list items called ``name`` of a list answer."""
    items = answer if isinstance(answer, list) else [answer]
    return [m for m in items if isinstance(m, Message) and m.get("Event") == name]


def as_list(value: Any) -> list[Any]:
    """A header's values as a list (panoramisk makes a repeated header a list)."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def first(value: Any) -> str:
    """A header's value; a UserEvent may repeat standard names (the first is Asterisk's)."""
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return "" if value is None else str(value)
