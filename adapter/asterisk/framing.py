"""AMI action headers that cannot break the AMI framing, whatever value they carry.

Asterisk reads each action line into a 1,025-byte buffer: a line over 1,024 bytes
(CRLF included) is refused ("Failed to parse message: line too long") and the
variable is not set at all. A CR or LF would end the header, or the whole action.
So a Setvar value keeps every character Asterisk can carry (commas, quotes,
semicolons, non-ASCII), has CR and LF turned into spaces, loses NUL and lone
surrogates (a C string and UTF-8 cannot hold them), and is cut at a UTF-8
character boundary to fit its line: 1,015 bytes for ``Value: ``.
"""

from __future__ import annotations

import re

from adapter.genagent.values import fit_utf8

AMI_LINE_MAX = 1024  # bytes, the terminating CRLF included
SETVAR_VALUE_MAX = AMI_LINE_MAX - len(b"Value: \r\n")  # 1,015 bytes
_LINE_BREAK = re.compile("[\r\n]")
_UNCARRIABLE = re.compile("[\x00\ud800-\udfff]")


def header_value(key: str, value: str) -> tuple[str, bool]:
    """``value`` fit for the AMI line ``key: value``, and whether it had to be cut."""
    room = AMI_LINE_MAX - len(f"{key}: \r\n".encode())
    if value.isascii() and len(value) <= room and _is_one_line(value):
        return value, False  # nothing to replace, drop or cut (the usual value)
    clean = _UNCARRIABLE.sub("", _LINE_BREAK.sub(" ", value))
    fitted = fit_utf8(clean, room)
    return fitted, len(fitted) < len(clean)


def setvar_action(channel: str, variable: str, value: str) -> tuple[dict[str, str], bool]:
    """The Setvar action for ``variable=value`` on ``channel``, and whether the value was cut."""
    fitted, cut = header_value("Value", value)
    name, _ = header_value("Variable", variable)
    target, _ = header_value("Channel", channel)
    return {"Action": "Setvar", "Channel": target, "Variable": name, "Value": fitted}, cut


def _is_one_line(value: str) -> bool:
    return "\r" not in value and "\n" not in value and "\x00" not in value
