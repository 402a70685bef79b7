"""The AMI wire format, without I/O: the greeting, messages as ``Key: value`` lines.

Every line ends with CRLF and a message ends with an empty line. An empty value is sent
as ``Key: `` (with the trailing space), as Asterisk does. A message is an ordered list of
headers: the same key may appear more than once (``Variable``, ``Output``) and order
matters (``ActionID`` is the second line of ``CoreShowChannel`` but the last of ``Status``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

GREETING = b"Asterisk Call Manager/11.0.0\r\n"
# manager.c reads each line into a 1,025-byte buffer: longer lines (CRLF included) are refused.
LINE_MAX = 1024
EOL = b"\r\n"
END = b"\r\n\r\n"

Header = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Message:
    """One AMI message: an action, a response or an event, headers in wire order."""

    headers: tuple[Header, ...]
    line_too_long: bool = False

    def get(self, key: str, default: str = "") -> str:
        """The first value of ``key`` (case-insensitive), as Asterisk's astman_get_header."""
        wanted = key.lower()
        for name, value in self.headers:
            if name.lower() == wanted:
                return value
        return default

    def get_all(self, key: str) -> list[str]:
        """Every value of ``key`` (case-insensitive), in order."""
        wanted = key.lower()
        return [value for name, value in self.headers if name.lower() == wanted]

    def keys(self) -> list[str]:
        return [name for name, _ in self.headers]

    def __iter__(self) -> Iterator[Header]:
        return iter(self.headers)


def encode(headers: Iterable[Header]) -> bytes:
    """The bytes of one message: ``Key: value`` CRLF lines, then an empty line."""
    return b"".join(f"{key}: {value}".encode() + EOL for key, value in headers) + EOL


def decode(raw: bytes) -> Message:
    """One message's bytes (with or without the final empty line) as a Message.

    A line without a colon carries no header and is dropped, as Asterisk does; a line
    over LINE_MAX bytes marks the message, which Asterisk refuses.
    """
    headers: list[Header] = []
    lines = raw.split(EOL)
    for line in lines:
        key, colon, value = line.decode().partition(":")
        if colon:
            headers.append((key, value.removeprefix(" ")))
    too_long = any(len(line) + len(EOL) > LINE_MAX for line in lines)
    return Message(tuple(headers), line_too_long=too_long)


class Decoder:
    """Split a byte stream into messages; keeps a partial message until its end arrives."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        *complete, self._buffer = self._buffer.split(END)
        return [decode(chunk) for chunk in complete if chunk.strip()]
