"""Driving the fake AMI from tests: the real panoramisk client, and a raw byte-level client.

The :class:`Client` wraps panoramisk 1.4 around its sharp edges:

- ``Manager.connect()`` resolves when TCP connects, before the Login answer: wait for
  ``on_login`` (:meth:`Client.wait_logged_in`) instead.
- A pending action can stay pending forever (a dropped connection, a restart): every await
  here runs under ``asyncio.wait_for``.
- ``reconnect_timeout`` and ``ping_delay`` are cut to whole seconds by ``int()``.
- The Manager must be created inside the running loop (its futures bind to it).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec

from panoramisk import Manager, Message

from tests.fake_ami.codec import END, GREETING, Header, encode
from tests.fake_ami.pbx import wait_until
from tests.fake_ami.server import FakeAsterisk

P = ParamSpec("P")
TEST_TIMEOUT = 10.0
STEP_TIMEOUT = 2.0


def async_test(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run a coroutine test in its own event loop, bounded by TEST_TIMEOUT."""

    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), TEST_TIMEOUT))

    return run


class Client:
    """A panoramisk Manager connected to the fake, with every event it dispatched."""

    def __init__(
        self,
        fake: FakeAsterisk,
        username: str = "adapter",
        secret: str = "secret",
        **config: Any,
    ) -> None:
        """``adapter``/``secret`` is the fake's all-privileges user; ``config`` goes to the
        Manager (``ping_delay`` 60 s and ``reconnect_timeout`` 1 s unless given)."""
        self.events: list[Message] = []
        self.logins = 0
        self.disconnects: list[Any] = []
        config.setdefault("ping_delay", 60)
        config.setdefault("reconnect_timeout", 1)
        self.manager = Manager(
            host="127.0.0.1",
            port=fake.port,
            username=username,
            secret=secret,
            on_login=self._on_login,
            on_disconnect=self._on_disconnect,
            **config,
        )
        self.manager.register_event("*", self._on_event)

    def _on_login(self, _manager: Manager) -> None:
        self.logins += 1

    def _on_disconnect(self, _manager: Manager, exc: Any) -> None:
        self.disconnects.append(exc)

    def _on_event(self, _manager: Manager, message: Message) -> None:
        self.events.append(message)

    async def connect(self) -> Client:
        """Connect and wait for the Login to be accepted."""
        await asyncio.wait_for(self.manager.connect(), STEP_TIMEOUT)
        await self.wait_logged_in(1)
        return self

    async def wait_logged_in(self, count: int, timeout: float = STEP_TIMEOUT) -> None:
        await wait_until(lambda: True if self.logins >= count else None, timeout, "login")

    async def send(self, action: dict[str, str], timeout: float = STEP_TIMEOUT) -> Any:
        """Send an action; its answer (a Message, or a list for list actions)."""
        return await asyncio.wait_for(self.manager.send_action(action), timeout)

    async def sync(self) -> None:
        """A Ping round trip: every event the fake sent before it has been dispatched."""
        assert (await self.send({"Action": "Ping"})).ping == "Pong"

    async def wait_for_event(
        self, name: str, timeout: float = STEP_TIMEOUT, **headers: str
    ) -> Message:
        """The first dispatched event ``name`` (``UserEvent`` name for user events) with
        these header values, already received or to come."""

        def find() -> Message | None:
            for message in self.events:
                event = message.get("UserEvent") if message.event == "UserEvent" else None
                if name in (message.event, event) and all(
                    message.get(key) == value for key, value in headers.items()
                ):
                    return message
            return None

        return await wait_until(find, timeout, f"dispatched {name} {headers}")

    def names(self, channel: str | None = None) -> list[str]:
        """Dispatched event names (``UserEvent/<name>`` for user events), optionally only
        those about ``channel`` (as Channel or DestChannel)."""
        return [
            f"UserEvent/{m.get('UserEvent')}" if m.event == "UserEvent" else m.event
            for m in self.events
            if channel is None or channel in (m.get("Channel"), m.get("DestChannel"))
        ]

    def close(self) -> None:
        self.manager.close()

    async def __aenter__(self) -> Client:
        return await self.connect()

    async def __aexit__(self, *_: object) -> None:
        self.close()


class RawClient:
    """A byte-level AMI client, to check exact bytes and header order."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, fake: FakeAsterisk) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", fake.port)
        client = cls(reader, writer)
        greeting = await asyncio.wait_for(reader.readline(), STEP_TIMEOUT)
        assert greeting == GREETING
        return client

    def send(self, *headers: Header) -> None:
        self.writer.write(encode(headers))

    async def read(self) -> bytes:
        """The next message's exact bytes, final empty line included."""
        return await asyncio.wait_for(self.reader.readuntil(END), STEP_TIMEOUT)

    async def read_eof(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), STEP_TIMEOUT) == b""

    async def login(self, username: str = "adapter", secret: str = "secret") -> None:
        """Log in with ``Events: off``, so that only answers to actions arrive."""
        self.send(
            ("Action", "Login"), ("Username", username), ("Secret", secret), ("Events", "off")
        )
        assert b"Authentication accepted" in await self.read()

    def close(self) -> None:
        self.writer.close()
