"""The one TCP (or TLS) connection of an AMI session, opened once and never reopened.

panoramisk 1.4's Manager.connect() schedules ``connect`` again with ``call_later`` after
every failed attempt and after every lost connection, from timers nobody holds: a
Manager given up on after a failed connect keeps dialing Asterisk forever, and when
Asterisk comes back each such loop connects again. Here a Manager never connects by itself:
:func:`connect_once` makes the one attempt, and panoramisk's own paths are no-ops.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from adapter.asterisk.parsing import EOL, AmiMessage, PendingAnswer, parse_message
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

    def dispatch(self, event: Message) -> list[str]:
        """panoramisk's dispatch; with ``wanted_events`` (no wildcard pattern) one dict
        lookup instead of a regular expression per pattern: the same exact, case-sensitive
        match of the event name."""
        if self.wanted_events is None:
            return list(super().dispatch(event))
        event.manager = self
        name = event.get("Event")
        callbacks = self.callbacks.get(name) if isinstance(name, str) else None
        if not callbacks:
            return []
        for callback in callbacks:
            callback(self, event)
        return [name]


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
        self._ids = itertools.count(1)

    def send_actions(self, actions: Sequence[Mapping[str, Any]]) -> list[asyncio.Future[Any]]:
        """Send ``actions`` in one write; a future per action for its whole answer."""
        loop = asyncio.get_running_loop()
        encoding = getattr(self, "encoding", "ascii")
        chunks: list[bytes] = []
        futures: list[asyncio.Future[Any]] = []
        for action in actions:
            action_id = f"genagent-{next(self._ids)}"
            future: asyncio.Future[Any] = loop.create_future()
            self.responses[action_id] = PendingAnswer(action, future)
            futures.append(future)
            lines: list[str] = []
            for key, value in action.items():
                if isinstance(value, list | tuple):
                    lines.extend(f"{key}: {item}" for item in value)
                elif key.lower() != "actionid":
                    lines.append(f"{key}: {value}")
            lines += (f"ActionID: {action_id}", EOL)
            try:
                chunks.append(EOL.join(lines).encode(encoding))
            except UnicodeError:  # as panoramisk: logged, never answered (a timeout)
                log.exception("cannot encode an AMI %s action", action.get("Action"))
        if chunks:
            self.transport.write(b"".join(chunks))
        return futures

    def close(self) -> None:
        """Close the connection; unanswered actions are dropped, never queued to re-send."""
        self.responses.clear()
        if not getattr(self, "closed", False):
            try:
                self.transport.close()
            finally:
                self.closed = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._manager.attach(self)

    def data_received(self, data: bytes) -> None:
        """panoramisk's data_received, minus the parse of unwanted events."""
        text = data.decode(getattr(self, "encoding", "ascii"), "ignore")
        if text.startswith("Asterisk Call Manager/") and getattr(self, "version", None) is None:
            self.version: str | None = text.partition(EOL)[0].partition("/")[2].strip()
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
            message = parse_message(line)
            if message is not None:
                self._handle(message)

    def _handle(self, message: AmiMessage) -> None:
        """An answer to its action, an event to the manager (panoramisk's handle_message)."""
        store = message._store
        item = store.get("actionid")
        if item is not None and isinstance(item[1], str):
            pending = self.responses.get(item[1])
            if pending is not None:
                if pending.add(message):
                    self.responses.pop(item[1], None)
                return
        if "event" in store:
            if str(store["event"][1]).lower() == "shutdown":
                self.connection_lost(message)
            self.factory.dispatch(message)


def _unwanted(line: str, wanted: frozenset[str]) -> bool:
    """An event (not an action's answer) whose name is not in ``wanted``."""
    if not line.startswith(_EVENT):
        return False
    end = line.find(EOL)
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
