"""One AMI session over panoramisk, with its sharp edges filed off.

panoramisk 1.4 reconnects by itself (after a lost connection, and again and again after
a failed connect, each time from a timer nobody can cancel), re-sends actions that were
never answered (a stale Redirect replayed minutes later is the last thing a live call
needs), resolves ``connect()`` before the login is done, pings without checking for a
reply, lets an action wait forever, and drops exceptions of coroutine callbacks.
So: a session opens its one connection itself (one attempt, under a timeout, optionally
over TLS) and panoramisk's own connect and reconnect paths do nothing; its Manager is
created inside the running loop, it logs in itself and waits for the answer, every
action runs under a timeout, a heartbeat that expects a reply detects a half-open
connection, and no action is ever re-sent. Reconnecting is the worker's job: it opens a
new session, one at a time.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from panoramisk import Manager
from panoramisk.message import Message

from adapter.asterisk.connection import OneShotManager, connect_once
from adapter.asterisk.messages import (
    AmiError,
    AmiTimeout,
    SessionClosed,
    as_list,
    checked,
    error_message,
    events_named,
    fitted_setvar,
    is_ok,
    raise_error,
    redirect_action,
    value_of,
)
from adapter.asterisk.settings import AmiSettings
from adapter.config import Secret

log = logging.getLogger("adapter.asterisk")

# panoramisk re-sends unanswered actions after a reconnect unless they are "forgettable".
_NEVER_RESEND = (
    "ping", "login", "logoff", "getvar", "setvar", "redirect", "status", "hangup",
    "coreshowchannels", "showdialplan",
)  # fmt: skip


EventHandler = Callable[[Message], None]


class AmiSession:
    """A logged-in AMI connection: typed actions under timeouts, events to handlers."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: Secret,
        *,
        action_timeout: float = 5.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self._secret = secret
        self.action_timeout = action_timeout
        self.closed = asyncio.Event()
        self._tls = tls
        self._manager: OneShotManager | None = None

    @classmethod
    def for_settings(cls, ami: AmiSettings, tls: ssl.SSLContext | None) -> AmiSession:
        """A session to the Asterisk of ``ami`` (``tls`` from :func:`tls_context`)."""
        return cls(
            ami.host, ami.port, ami.username, ami.secret, action_timeout=ami.action_timeout, tls=tls
        )

    async def open(self, handlers: Mapping[str, EventHandler]) -> None:
        """Connect (one attempt) and log in; AmiError naming the cause if either fails.

        A session opens once; whatever fails leaves no socket, task or timer behind."""
        if self._manager is not None:
            raise AmiError("an AMI session opens once; make a new one to reconnect")
        loop = asyncio.get_running_loop()
        manager = OneShotManager(
            loop=loop,
            host=self.host,
            port=self.port,
            ping_delay=10**9,  # its ping never checks for a reply: ours does
            forgetable_actions=_NEVER_RESEND,
            on_disconnect=lambda _manager, _exc: self.closed.set(),
        )
        for pattern, handler in handlers.items():
            manager.register_event(pattern, _guarded(handler))
        if not any(char in pattern for pattern in handlers for char in "*?["):
            manager.wanted_events = frozenset(handlers)  # skip the others unparsed
        self._manager = manager
        try:
            await connect_once(manager, self.host, self.port, self._tls, self.action_timeout)
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            self.closed.set()
            raise AmiError(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        try:
            answer = await self.action(
                {"Action": "Login", "Username": self.username, "Secret": self._secret.reveal()},
                check=False,
            )
        except BaseException:
            self.close()
            raise
        if not is_ok(answer):
            self.close()
            raise AmiError(f"AMI login as {self.username!r} refused: {error_message(answer)}")

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._manager is not None:
            self._manager.close()
        self.closed.set()

    async def action(
        self, action: dict[str, Any], *, check: bool = True, timeout: float | None = None
    ) -> Any:
        """Send ``action`` and await its whole answer (a Message, or a list for event lists).

        With ``check``, an error answer raises ChannelGone or AmiError.
        """
        [answer] = await self.pipeline([action], check=check, timeout=timeout)
        if isinstance(answer, AmiError):
            raise answer
        return answer

    async def pipeline(
        self,
        actions: Sequence[dict[str, Any]],
        *,
        check: bool = True,
        timeout: float | None = None,
    ) -> list[Any]:
        """Send ``actions`` in one write, in order, and await every answer under one timeout.

        Asterisk runs a session's actions one after the other, so this is ``action`` on
        each in turn, minus a round trip per action. Each answer is returned in place, or
        with ``check`` the ChannelGone / AmiError its error answer means (not raised).
        """
        manager = self._manager
        if manager is None or self.closed.is_set() or manager.protocol is None:
            raise SessionClosed("the AMI session is closed")
        futures = manager.protocol.send_actions(actions)
        try:
            # asyncio.timeout, not wait_for: no Task per action (some 15 actions a call).
            async with asyncio.timeout(timeout if timeout is not None else self.action_timeout):
                # Asterisk answers a session's actions in order: once the last answer is in,
                # so are the others (one wake-up, not one per answer).
                if futures:
                    await futures[-1]
                answers = [await future for future in futures]
        except TimeoutError:
            for future in futures:
                future.cancel()
            names = ", ".join(str(action["Action"]) for action in actions)
            raise AmiTimeout(f"no answer to {names} in time") from None
        if not check:
            return answers
        return [checked(action, answer) for action, answer in zip(actions, answers, strict=True)]

    # --- the actions the worker uses ----------------------------------------------------

    async def ping(self, timeout: float) -> None:
        """A heartbeat that needs its reply: AmiTimeout on a half-open connection."""
        await self.action({"Action": "Ping"}, timeout=timeout)

    async def getvar(self, channel: str, variable: str) -> str:
        """A channel variable's value ('' when unset)."""
        answer = await self.action({"Action": "Getvar", "Channel": channel, "Variable": variable})
        return value_of(answer)

    async def getvars(self, channel: str, variables: Sequence[str]) -> list[str]:
        """Several variables' values ('' when unset), asked in one write; the first error
        answer is raised."""
        actions = [{"Action": "Getvar", "Channel": channel, "Variable": v} for v in variables]
        return [value_of(raise_error(answer)) for answer in await self.pipeline(actions)]

    async def setvar(self, channel: str, variable: str, value: str) -> None:
        """Set a channel variable; the value is fit to one AMI line (see framing.py)."""
        await self.action(fitted_setvar(channel, variable, value))

    async def setvars(
        self, channel: str, variables: Mapping[str, str], *, then: dict[str, Any] | None = None
    ) -> list[Any]:
        """Set several variables (and run ``then``, e.g. a Redirect, after them) in one
        write; the answers as :meth:`pipeline` gives them."""
        actions = [fitted_setvar(channel, name, value) for name, value in variables.items()]
        return await self.pipeline([*actions, *([then] if then else [])])

    async def redirect(
        self, channel: str, context: str, exten: str = "s", priority: int = 1
    ) -> None:
        """Send the channel to ``context,exten,priority``."""
        await self.action(redirect_action(channel, context, exten, priority))

    async def variables(self, channel: str) -> dict[str, str]:
        """Every variable set on the channel (Status with AllVariables)."""
        return dict(await self.listed_variables(channel))

    async def listed_variables(self, channel: str) -> list[tuple[str, str]]:
        """Every variable set on the channel, as Status with AllVariables lists them (newest
        first: a name inherited and set again is listed twice)."""
        answer = await self.action({"Action": "Status", "Channel": channel, "AllVariables": "true"})
        found: list[tuple[str, str]] = []
        for message in events_named(answer, "Status"):
            for item in as_list(message.get("Variable")):
                name, sep, value = str(item).partition("=")
                if sep and value != "(null)":
                    found.append((name, value))
        return found

    async def channels(self) -> list[Message]:
        """Every live channel (CoreShowChannels)."""
        answer = await self.action({"Action": "CoreShowChannels"})
        return events_named(answer, "CoreShowChannel")

    async def has_extension(self, context: str, exten: str = "s") -> bool:
        """True if the dialplan defines ``exten`` in ``context`` (ShowDialPlan)."""
        try:
            answer = await self.action(
                {"Action": "ShowDialPlan", "Context": context, "Extension": exten}
            )
        except AmiError as exc:
            if "did not find" in str(exc).lower():
                return False
            raise
        return bool(events_named(answer, "ListDialplan"))


def _guarded(handler: EventHandler) -> Callable[[Manager, Message], None]:
    """panoramisk swallows what a callback raises: log it instead."""

    def call(_manager: Manager, event: Message) -> None:
        try:
            handler(event)
        except Exception:
            log.exception("AMI event handler failed on %s", event.get("Event"))

    return call
