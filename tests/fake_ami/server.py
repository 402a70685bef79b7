"""A fake Asterisk manager interface (AMI) on 127.0.0.1, as the recorded Asterisk 22.

It speaks the real wire protocol over TCP, so the real panoramisk client can talk to it:
the greeting, Login (with each user's read/write privileges), Logoff, Ping, Getvar, Setvar,
Redirect, Hangup, Status (``Variables``, ``AllVariables``), CoreShowChannels and
ShowDialPlan (the repository's ``asterisk_conf`` dialplan), with the recorded error
messages and header orders. Calls live in :mod:`tests.fake_ami.pbx`; tests script them
(:meth:`FakeAsterisk.new_caller`) and read every action a client sent (``actions``).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass

from tests.fake_ami.codec import GREETING, Decoder, Header, Message, encode
from tests.fake_ami.dialplan import (
    CORE_CONF,
    MANAGER_CONF,
    ROUTES_CONF,
    SIP_CONF,
    Dialplan,
    manager_entries,
)
from tests.fake_ami.filters import NO_FILTERS, EventFilters
from tests.fake_ami.model import Numbering, core_show_channel, event, status_item
from tests.fake_ami.pbx import (
    ANSWER_THEN_WAIT,
    TEST_IVR_CONF,
    Caller,
    DialHandler,
    DialOutcome,
    Pbx,
    PbxConfig,
    wait_until,
)

ALL_CLASSES = frozenset(
    {
        *("system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf"),
        *("reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test"),
        *("security", "message"),
    }
)

# The write privilege each action needs (any one of them), as Asterisk registers them.
# Empty: any logged-in user. Known but not emulated: Originate, Command, UserEvent.
AUTHORITY: dict[str, frozenset[str]] = {
    "login": frozenset(),
    "logoff": frozenset(),
    "ping": frozenset(),
    "getvar": frozenset({"call", "reporting"}),
    "setvar": frozenset({"call"}),
    "redirect": frozenset({"call"}),
    "hangup": frozenset({"system", "call"}),
    "status": frozenset({"system", "call", "reporting"}),
    "coreshowchannels": frozenset({"system", "reporting"}),
    "showdialplan": frozenset({"config", "reporting"}),
    "originate": frozenset({"originate"}),
    "command": frozenset({"command"}),
    "userevent": frozenset({"user"}),
}
GETVAR_MAX = 1023
LOGIN_ACTIONS = frozenset({"login", "logoff", "challenge"})


def privileges(spec: str) -> frozenset[str]:
    """A manager.conf ``read``/``write`` value as a set of classes (``all`` is every one)."""
    names = {part.strip().lower() for part in spec.split(",") if part.strip()}
    return ALL_CLASSES if "all" in names else frozenset(names)


@dataclass(frozen=True, slots=True)
class Account:
    """A manager.conf user: its secret, its read/write privilege classes, its
    ``eventfilter`` lines."""

    secret: str
    read: frozenset[str] = ALL_CLASSES
    write: frozenset[str] = ALL_CLASSES
    filters: EventFilters = NO_FILTERS

    def unfiltered(self) -> Account:
        """The same user without its event filters (an admin who left them out)."""
        return Account(self.secret, self.read, self.write)


def default_accounts() -> dict[str, Account]:
    """``adapter``/``secret`` with every privilege (as in the recordings), and the
    least-privilege ``genagent-adapter`` of asterisk_conf/manager_genagent.conf (its
    privileges and event filters), with the secret ``worker-secret``."""
    entries = manager_entries(MANAGER_CONF.read_text())["genagent-adapter"]
    user = dict(entries)
    least = Account(
        "worker-secret",
        privileges(user["read"]),
        privileges(user["write"]),
        EventFilters.parse(value for key, value in entries if key == "eventfilter"),
    )
    return {"adapter": Account("secret"), "genagent-adapter": least}


@dataclass(frozen=True, slots=True)
class ReceivedAction:
    """One action a client sent, headers in the order they arrived."""

    session: int
    message: Message

    @property
    def name(self) -> str:
        return self.message.get("Action")

    def get(self, key: str, default: str = "") -> str:
        return self.message.get(key, default)


@dataclass(eq=False)
class Session:
    """One client connection."""

    id: int
    writer: asyncio.StreamWriter
    account: Account | None = None
    events: bool = True

    def send(self, headers: Iterable[Header]) -> None:
        if not self.writer.is_closing():
            self.writer.write(encode(headers))

    def wants(self, privilege: str) -> bool:
        """Whether an event of this ``Privilege`` (e.g. ``call,all``) reaches this client,
        its user's event filters aside."""
        if self.account is None or not self.events:
            return False
        return privilege.split(",")[0].lower() in self.account.read

    def send_event(self, privilege: str, raw: bytes) -> bool:
        """Send an event's bytes if its class and the user's filters let it through."""
        if not self.wants(privilege):
            return False
        assert self.account is not None
        filters = self.account.filters
        if filters and not filters.allows(raw.decode()):
            return False
        if not self.writer.is_closing():
            self.writer.write(raw)
        return True


class FakeAsterisk:
    """The fake Asterisk: a TCP AMI server, its calls, and the recorder of actions."""

    def __init__(
        self,
        *,
        dialplan: Dialplan | None = None,
        accounts: dict[str, Account] | None = None,
        login_failure_delay: float = 0.05,
        teardown_delay: float = 0.0,
        handoff_timeout: float | None = None,
        return_timeout: float | None = None,
        dial_timeout: float | None = None,
        default_outcome: DialOutcome = ANSWER_THEN_WAIT,
        dial_handler: DialHandler | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """Timeouts left as None come from the dialplan globals (30 s, 30 s, 20 s);
        ``login_failure_delay`` stands for Asterisk's 1 s pause before a failed Login;
        ``tls`` serves AMI over TLS, as Asterisk's ``tlsenable`` does."""
        self.config = PbxConfig(
            dialplan=dialplan or Dialplan.load([CORE_CONF, SIP_CONF, ROUTES_CONF], TEST_IVR_CONF),
            handoff_timeout=handoff_timeout,
            return_timeout=return_timeout,
            dial_timeout=dial_timeout,
            teardown_delay=teardown_delay,
            default_outcome=default_outcome,
            dial_handler=dial_handler,
        )
        self.pbx = Pbx(self.config, self._broadcast)
        self.accounts = accounts if accounts is not None else default_accounts()
        self.login_failure_delay = login_failure_delay
        self.tls = tls
        self.port = 0
        self.connections = 0  # accepted over the fake's whole life, restarts included
        self.actions: list[ReceivedAction] = []
        self.events: list[Message] = []
        self.sessions: list[Session] = []
        self.stalled_actions: set[str] = set()
        self._server: asyncio.Server | None = None
        self._session_ids = itertools.count(1)
        self._session_tasks: set[asyncio.Task[None]] = set()
        self._started = time.monotonic()
        self._fully_booted = True

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> FakeAsterisk:
        """Listen on 127.0.0.1: a free port the first time, the same port afterwards."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """End every call program, close every connection and stop listening."""
        self.pbx.close()
        await self._close_listener()

    async def __aenter__(self) -> FakeAsterisk:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def drop_connections(self) -> None:
        """Break every client connection abruptly (no Shutdown event; a TCP reset)."""
        for session in self.sessions:
            transport = session.writer.transport
            if isinstance(transport, asyncio.Transport):
                transport.abort()

    async def go_away(self) -> None:
        """Asterisk unreachable (a network outage): every connection reset, the port
        refusing connections until :meth:`start` listens on it again; calls go on."""
        self.drop_connections()
        await self._close_listener()

    async def restart(
        self, *, down_for: float = 0.05, eof_after: float = 0.01, boot_delay: float = 0.0
    ) -> None:
        """``core restart now``: hang every call up, send Shutdown, close the connections,
        refuse connections for ``down_for`` seconds, then listen on the same port with new
        channel numbering. A Login during ``boot_delay`` gets FullyBooted only when the boot
        completes (after SuccessfulAuth, Status first, Uptime 0), as recorded."""
        await self.pbx.hang_up_all()
        self._broadcast(
            event("Shutdown", "system,all", ("Shutdown", "Cleanly"), ("Restart", "True"))
        )
        await asyncio.sleep(eof_after)
        self.pbx.close()
        await self._close_listener()
        await asyncio.sleep(down_for)
        after = self.pbx.numbering.last_epoch + 1
        self.pbx = Pbx(self.config, self._broadcast, Numbering(after))
        self._started, self._fully_booted = time.monotonic(), boot_delay <= 0
        await self.start()
        if boot_delay > 0:
            await asyncio.sleep(boot_delay)
            self._fully_booted = True
            uptime = str(self._uptime())
            self._broadcast(
                event(
                    "FullyBooted",
                    "system,all",
                    ("Status", "Fully Booted"),
                    ("Uptime", uptime),
                    ("LastReload", uptime),
                )
            )

    async def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions):
            session.writer.close()
        if self._session_tasks:
            await asyncio.wait(self._session_tasks, timeout=2.0)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # ----------------------------------------------------------------- for the tests

    def new_caller(
        self,
        variables: dict[str, str] | None = None,
        *,
        endpoint: str = "caller",
        caller_id: tuple[str, str] = ("15551230001", "Test Caller"),
        local: bool = False,
    ) -> Caller:
        """A PJSIP caller (``PJSIP/<endpoint>-0000000N``) answered in the test IVR; with
        ``local``, the ``;2`` half of ``Local/<endpoint>@caller-sim-0000000N``."""
        return self.pbx.new_caller(variables, endpoint=endpoint, caller_id=caller_id, local=local)

    def actions_named(self, name: str) -> list[ReceivedAction]:
        return [action for action in self.actions if action.name.lower() == name.lower()]

    async def wait_for_action(
        self, name: str, timeout: float = 2.0, **headers: str
    ) -> ReceivedAction:
        """The first action called ``name`` with these header values, received or to come."""

        def find() -> ReceivedAction | None:
            for action in self.actions_named(name):
                if all(action.get(key) == value for key, value in headers.items()):
                    return action
            return None

        return await wait_until(find, timeout, f"action {name} {headers}")

    async def wait_for_event(self, name: str, timeout: float = 2.0, **headers: str) -> Message:
        """The first event sent (to anyone) called ``name`` with these header values."""

        def find() -> Message | None:
            for message in self.events:
                if message.get("Event") == name and all(
                    message.get(key) == value for key, value in headers.items()
                ):
                    return message
            return None

        return await wait_until(find, timeout, f"event {name} {headers}")

    # ----------------------------------------------------------------- connections

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._session_tasks.add(task)
        self.connections += 1
        session = Session(next(self._session_ids), writer)
        self.sessions.append(session)
        writer.write(GREETING)
        decoder = Decoder()
        try:
            while not writer.is_closing() and (data := await reader.read(65536)):
                for message in decoder.feed(data):
                    await self._handle(session, message)
                    if writer.is_closing():
                        break
        except ConnectionError:
            pass
        finally:
            self.sessions.remove(session)
            writer.close()
            self._session_tasks.discard(task)

    def _broadcast(self, headers: list[Header]) -> None:
        """Send an event to every client whose read privileges cover its class."""
        self.events.append(Message(tuple(headers)))
        privilege = dict(headers)["Privilege"]
        raw = encode(headers)
        for session in self.sessions:
            session.send_event(privilege, raw)

    def _uptime(self) -> int:
        return int(time.monotonic() - self._started)

    async def _handle(self, session: Session, message: Message) -> None:
        self.actions.append(ReceivedAction(session.id, message))
        if message.line_too_long:  # as trace-sip-3b-ami-long-line: nothing is done
            return self._error(session, message, "Failed to parse message: line too long")
        action = next((value for key, value in message if key.lower() == "action" and value), "")
        if not action:
            return self._error(session, message, "Missing action in request")
        name = action.lower()
        if session.account is None and name not in LOGIN_ACTIONS:
            return self._error(session, message, "Permission denied")
        if name not in AUTHORITY:
            return self._error(
                session,
                message,
                f"Invalid/unknown command: {action}. "
                "Use Action: ListCommands to show available commands.",
            )
        needs = AUTHORITY[name]
        if needs and not (session.account and session.account.write & needs):
            return self._error(session, message, "Permission denied")
        if name in self.stalled_actions:
            return None  # a fault: never answered
        handler = getattr(self, f"_action_{name}", None)
        if handler is None:
            return self._error(session, message, f"Not emulated by the fake AMI: {action}")
        await handler(session, message)
        return None

    # ----------------------------------------------------------------- responses

    @staticmethod
    def _response(message: Message, response: str, *headers: Header) -> list[Header]:
        """``Response``, then ``ActionID`` when the action had one, then the rest."""
        action_id = message.get("ActionID")
        return [("Response", response), *([("ActionID", action_id)] if action_id else []), *headers]

    def _ack(self, session: Session, message: Message, text: str) -> None:
        session.send(self._response(message, "Success", ("Message", text)))

    def _error(self, session: Session, message: Message, text: str) -> None:
        session.send(self._response(message, "Error", ("Message", text)))

    def _list_ack(self, session: Session, message: Message, text: str) -> None:
        session.send(self._response(message, "Success", ("EventList", "start"), ("Message", text)))

    @staticmethod
    def _list_complete(message: Message, name: str, count: int, *extra: Header) -> list[Header]:
        action_id = message.get("ActionID")
        return [
            ("Event", name),
            *([("ActionID", action_id)] if action_id else []),
            ("EventList", "Complete"),
            ("ListItems", str(count)),
            *extra,
        ]

    # ----------------------------------------------------------------- actions

    async def _action_login(self, session: Session, message: Message) -> None:
        if session.account is not None:
            return self._ack(session, message, "Already authenticated")
        username = message.get("Username")
        account = self.accounts.get(username)
        if account is None or account.secret != message.get("Secret"):
            await asyncio.sleep(self.login_failure_delay)
            self._error(session, message, "Authentication failed")
            session.writer.close()
            return None
        session.account = account
        session.events = message.get("Events", "on").lower() != "off"
        self._ack(session, message, "Authentication accepted")
        if self._fully_booted:
            booted = event(
                "FullyBooted",
                "system,all",
                ("Uptime", str(self._uptime())),
                ("LastReload", str(self._uptime())),
                ("Status", "Fully Booted"),
            )
            session.send_event("system,all", encode(booted))
        local = session.writer.get_extra_info("sockname") or ("127.0.0.1", 0)
        remote = session.writer.get_extra_info("peername") or ("127.0.0.1", 0)
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime())
        self._broadcast(
            event(
                "SuccessfulAuth",
                "security,all",
                ("EventTV", now),
                ("Severity", "Informational"),
                ("Service", "AMI"),
                ("EventVersion", "1"),
                ("AccountID", username),
                ("SessionID", f"0x{id(session):x}"),
                ("LocalAddress", f"IPV4/TCP/{local[0]}/{local[1]}"),
                ("RemoteAddress", f"IPV4/TCP/{remote[0]}/{remote[1]}"),
                ("UsingPassword", "0"),
                ("SessionTV", now),
            )
        )
        return None

    async def _action_logoff(self, session: Session, message: Message) -> None:
        session.send(self._response(message, "Goodbye", ("Message", "Thanks for all the fish.")))
        session.writer.close()

    async def _action_ping(self, session: Session, message: Message) -> None:
        session.send(
            self._response(
                message, "Success", ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}")
            )
        )

    async def _action_getvar(self, session: Session, message: Message) -> None:
        variable = message.get("Variable")
        if not variable:
            return self._error(session, message, "No variable specified")
        forbidden = "SHELL" in variable or "EVAL" in variable
        if forbidden and session.account and "system" not in session.account.write:
            return self._error(session, message, "GetVar Access Forbidden: Variable")
        name = message.get("Channel")
        channel = self.pbx.find(name) if name else None
        if name and channel is None:
            return self._error(session, message, "No such channel")
        # manager.c copies every result into a 1,024-byte buffer: 1,023 bytes at most (a
        # character cut in two is lost when the worker decodes the line).
        raw = (self.pbx.read_variable(channel, variable) or "").encode()
        value = raw[:GETVAR_MAX].decode("utf-8", "ignore")
        session.send(self._response(message, "Success", ("Variable", variable), ("Value", value)))
        return None

    async def _action_setvar(self, session: Session, message: Message) -> None:
        variable = message.get("Variable")
        if not variable:
            return self._error(session, message, "No variable specified")
        value = message.get("Value")
        if name := message.get("Channel"):
            if (channel := self.pbx.find(name)) is None:
                return self._error(session, message, "No such channel")
            # _NAME / __NAME: stored under NAME, inherited by the channels it creates.
            name = variable.lstrip("_")
            if name != variable:
                channel.inheritable.add(name)
            channel.set_var(name, value)
        else:
            self.pbx.globals[variable] = value
        return self._ack(session, message, "Variable Set")

    async def _action_redirect(self, session: Session, message: Message) -> None:
        name, context = message.get("Channel"), message.get("Context")
        exten, priority = message.get("Exten"), message.get("Priority")
        for missing, text in (
            (name, "Channel not specified"),
            (context, "Context not specified"),
            (exten, "Exten not specified"),
            (priority, "Priority not specified"),
        ):
            if not missing:
                return self._error(session, message, text)
        number = re.match(r"\s*([+-]?\d+)", priority)
        target = (
            int(number.group(1))
            if number
            else self.pbx.dialplan.find_label(context, exten, priority) or -1
        )
        if target < 1:
            return self._error(session, message, "Priority is invalid")
        channel = self.pbx.find(name)
        if channel is None:
            return self._error(session, message, f"Channel does not exist: {name}")
        if channel.hanging_up:
            return self._error(session, message, "Redirect failed, channel not up.")
        caller = self.pbx.caller_of(channel)
        if caller is None:
            return self._error(session, message, "Not emulated by the fake AMI: Redirect of a leg")
        self._ack(session, message, "Redirect successful")
        self.pbx.redirect(caller, context, exten, target)
        return None

    async def _action_hangup(self, session: Session, message: Message) -> None:
        name = message.get("Channel")
        if not name:
            return self._error(session, message, "No channel specified")
        channel = self.pbx.find(name)
        if channel is None:
            return self._error(session, message, "No such channel")
        cause_text = message.get("Cause")
        cause = int(cause_text) if cause_text.isdigit() and int(cause_text) <= 127 else 16
        if (caller := self.pbx.caller_of(channel)) is not None:
            self._ack(session, message, "Channel Hungup")
            self.pbx.terminate(caller, cause, "SoftHangupRequest", cause)
            return None
        dialing = self.pbx.dialing_with(channel)
        if dialing is None or dialing.dial is None or dialing.dial.phase != "bridged":
            return self._error(session, message, "Not emulated by the fake AMI: Hangup of a leg")
        self._ack(session, message, "Channel Hungup")
        dialing.dial.agent_gone.set()
        return None

    async def _action_status(self, session: Session, message: Message) -> None:
        name = message.get("Channel")
        channels = list(self.pbx.channels)
        if name:
            found = self.pbx.find(name)
            if found is None:
                return self._error(session, message, "No such channel")
            channels = [found]
        wanted = [v for v in message.get("Variables").split(",") if v]
        everything = message.get("AllVariables").lower() in {"yes", "true", "y", "t", "1", "on"}
        self._list_ack(session, message, "Channel status will follow")
        action_id = message.get("ActionID")
        for channel in channels:
            values = [(v, self.pbx.read_variable(channel, v)) for v in wanted]
            # Asterisk prints an unset variable as "(null)".
            variables = [(v, "(null)" if value is None else value) for v, value in values]
            if everything:
                variables += list(channel.variables.items())
            session.send(status_item(channel, variables, action_id))
        count = str(len(channels))
        session.send(
            self._list_complete(message, "StatusComplete", len(channels), ("Items", count))
        )
        return None

    async def _action_coreshowchannels(self, session: Session, message: Message) -> None:
        self._list_ack(session, message, "Channels will follow")
        # Asterisk lists from a hash container: not in creation order.
        for channel in reversed(self.pbx.channels):
            session.send(core_show_channel(channel, message.get("ActionID")))
        session.send(
            self._list_complete(message, "CoreShowChannelsComplete", len(self.pbx.channels))
        )

    async def _action_showdialplan(self, session: Session, message: Message) -> None:
        wanted_context, wanted_exten = message.get("Context"), message.get("Extension")
        contexts = [
            context
            for name, context in self.pbx.dialplan.contexts.items()
            if not wanted_context or name == wanted_context
        ]
        if wanted_context and not contexts:
            return self._error(session, message, f"Did not find context {wanted_context}")
        action_id = [("ActionID", message.get("ActionID"))] if message.get("ActionID") else []
        items: list[list[Header]] = []
        extensions = 0
        for context in contexts:
            for exten in sorted(context.extensions):
                if wanted_exten and exten != wanted_exten:
                    continue
                extensions += 1
                for step in context.extensions[exten]:
                    items.append(
                        [
                            ("Event", "ListDialplan"),
                            *action_id,
                            ("Context", context.name),
                            ("Extension", exten),
                            *([("ExtensionLabel", step.label)] if step.label else []),
                            ("Priority", str(step.priority)),
                            ("Application", step.app),
                            ("AppData", step.data),
                            ("Registrar", "pbx_config"),
                        ]
                    )
            if not wanted_exten:
                for include in context.includes:
                    items.append(
                        [
                            ("Event", "ListDialplan"),
                            *action_id,
                            ("Context", context.name),
                            ("IncludeContext", include),
                            ("Registrar", "pbx_config"),
                        ]
                    )
        if wanted_exten and not extensions:
            where = f"{wanted_exten}@{wanted_context}" if wanted_context else wanted_exten
            suffix = "" if wanted_context else " in any context"
            return self._error(session, message, f"Did not find extension {where}{suffix}")
        self._list_ack(session, message, "DialPlan list will follow")
        for item in items:
            session.send(item)
        priorities = sum(1 for item in items if dict(item).get("Priority"))
        session.send(
            self._list_complete(
                message,
                "ShowDialPlanComplete",
                len(items),
                ("ListExtensions", str(extensions)),
                ("ListPriorities", str(priorities)),
                ("ListContexts", str(len(contexts))),
            )
        )
        return None
