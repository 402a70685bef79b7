"""The one TCP (or TLS) connection of an AMI session, opened once and never reopened.

panoramisk 1.4's Manager.connect() schedules ``connect`` again with ``call_later`` after
every failed attempt and after every lost connection, from timers nobody holds: a
Manager given up on after a failed connect keeps dialing Asterisk forever, and when
Asterisk comes back each such loop connects again. Here a Manager never connects by itself:
:func:`connect_once` makes the one attempt, and panoramisk's own paths are no-ops.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from adapter.asterisk.settings import AmiSettings

log = logging.getLogger("adapter.asterisk")


def tls_context(settings: AmiSettings) -> ssl.SSLContext | None:
    """The client TLS context for AMI_TLS (None without it); warns when nothing is verified."""
    if not settings.tls:
        return None
    context = ssl.create_default_context(cafile=settings.tls_ca_file)
    if not settings.tls_verify:
        log.warning(
            "AMI_TLS_VERIFY=false: the AMI connection is encrypted but Asterisk's certificate "
            "is not checked; anyone on the path can pose as Asterisk"
        )
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


_END = "\r\n\r\n"
_EOL = "\r\n"
_EVENT = "Event: "
_ACTION_ID = "ActionID: "
# Events panoramisk itself acts on, whoever listens.
_ALWAYS_PARSED = frozenset({"Shutdown"})


class OneShotManager(Manager):  # type: ignore[misc]
    """A panoramisk Manager that never connects or reconnects by itself.

    ``wanted_events``: the only event names worth parsing (None: every event). Answers
    to actions (list items included: they carry the ActionID) are always parsed.
    """

    wanted_events: frozenset[str] | None = None

    def connect(self, *_args: object, **_kwargs: object) -> None:
        """panoramisk's connect, and every timer it sets to call it again: a no-op."""
        log.debug("ignored a connect attempt from panoramisk")

    def connection_made(self, _future: object) -> None:
        """Only reached through panoramisk's own connect, which never runs."""

    def attach(self, protocol: AMIProtocol) -> None:
        """Adopt a freshly connected protocol, as panoramisk would, minus Login and pinger."""
        self._connected = True
        self.protocol = protocol
        protocol.queue = deque()
        protocol.factory = self
        protocol.log = self.log
        protocol.config = self.config
        protocol.encoding = self.encoding = self.config["encoding"]
        self.responses = protocol.responses = {}

    def connection_lost(self, exc: object) -> None:
        self._connected = False
        pinger: asyncio.TimerHandle | None = getattr(self, "pinger", None)
        if pinger is not None:
            pinger.cancel()
        self.pinger = None
        self.loop.call_soon(self.on_disconnect, self, exc)


class _Buffer:
    """Stands in for a transport: keeps what is written."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.chunks.append(data)


@contextmanager
def corked(protocol: AMIProtocol) -> Iterator[None]:
    """Actions sent inside go out together, in one write (one syscall, not one each)."""
    transport = protocol.transport
    buffer = _Buffer()
    protocol.transport = buffer
    try:
        yield
    finally:
        protocol.transport = transport
        if buffer.chunks:
            transport.write(b"".join(buffer.chunks))


class _Protocol(AMIProtocol):  # type: ignore[misc]
    """AMIProtocol wired to its manager as soon as TCP connects, before any byte arrives,
    that skips the events nobody handles before parsing them.

    Without an event filter in manager.conf a real Asterisk sends about 48 events a call
    to the worker's user, of which it acts on about 4: a look at the first line of each
    message is far cheaper than panoramisk's parse into a Message and its dispatch.
    """

    def __init__(self, manager: OneShotManager) -> None:
        super().__init__()
        self._manager = manager
        self.skipped = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._manager.attach(self)

    def data_received(self, data: bytes) -> None:
        """panoramisk's data_received, minus the parse of unwanted events."""
        text = data.decode(getattr(self, "encoding", "ascii"), "ignore")
        if text.startswith("Asterisk Call Manager/") and getattr(self, "version", None) is None:
            self.version: str | None = text.partition(_EOL)[0].partition("/")[2].strip()
        if self.queue:
            text = self.queue.popleft() + text
        chunks = text.split(_END)
        self.queue.append(chunks.pop())
        wanted = self._manager.wanted_events
        for chunk in chunks:
            line = chunk.strip()
            if wanted is not None and _unwanted(line, wanted):
                self.skipped += 1
                continue
            message = Message.from_line(line)
            if message is not None:
                self.handle_message(message)


def _unwanted(line: str, wanted: frozenset[str]) -> bool:
    """An event (not an action's answer) whose name is not in ``wanted``."""
    if not line.startswith(_EVENT):
        return False
    end = line.find(_EOL)
    name = line[len(_EVENT) : end if end >= 0 else len(line)].strip()
    return name not in wanted and name not in _ALWAYS_PARSED and _ACTION_ID not in line


async def connect_once(
    manager: OneShotManager, host: str, port: int, tls: ssl.SSLContext | None, timeout: float
) -> None:
    """One connection attempt under ``timeout``; OSError or TimeoutError if it fails, and
    then nothing is left open and nothing will try again."""
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(
        loop.create_connection(
            lambda: _Protocol(manager),
            host,
            port,
            ssl=tls,
            server_hostname=host if tls is not None else None,
        ),
        timeout,
    )
