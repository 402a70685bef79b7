"""A small reader of Asterisk config files: extensions.conf dialplan and manager.conf users.

It understands what ``asterisk_conf/`` uses and rejects the rest loudly: ``[section]``
headers, ``;`` comments (``\\;`` is a literal semicolon), ``NAME=value`` in ``[globals]``,
and in contexts ``exten => ext,priority,App(data)``, ``same => priority,App(data)`` and
``include => context``, where a priority is a number, ``n``, or either with a ``(label)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

REPO_CONF_DIR = Path(__file__).resolve().parents[2] / "asterisk_conf"
CORE_CONF = REPO_CONF_DIR / "extensions_genagent.conf"
ROUTES_CONF = REPO_CONF_DIR / "extensions_genagent_routes.conf"
SIP_CONF = REPO_CONF_DIR / "extensions_genagent_sip.conf"
MANAGER_CONF = REPO_CONF_DIR / "manager_genagent.conf"

_SECTION = re.compile(r"^\[([^\]\s]+)\]$")
_PRIORITY = re.compile(r"^(?P<number>\d+|n)(?:\((?P<label>[A-Za-z0-9_-]+)\))?$")
_APP = re.compile(r"^(?P<app>[A-Za-z][A-Za-z0-9_]*)(?:\((?P<data>.*)\))?$")


class ConfError(ValueError):
    """A line the reader does not understand, with its file and line number."""


@dataclass(frozen=True, slots=True)
class Step:
    """One priority of an extension, as written in the file."""

    context: str
    exten: str
    priority: int
    label: str | None
    app: str
    data: str
    kind: str  # "exten" or "same": the keyword of the line that defined it
    raw_priority: str
    source: str
    line: int


@dataclass
class Context:
    """The extensions and includes of one dialplan context."""

    name: str
    extensions: dict[str, list[Step]] = field(default_factory=dict)
    includes: list[str] = field(default_factory=list)


@dataclass
class ConfFile:
    """One parsed file: its section names in order, its globals and its contexts."""

    source: str
    sections: list[str] = field(default_factory=list)
    globals: dict[str, str] = field(default_factory=dict)
    contexts: dict[str, Context] = field(default_factory=dict)


def strip_comment(line: str) -> str:
    """The line without its ``;`` comment (``\\;`` stays, as a literal semicolon)."""
    out: list[str] = []
    escaped = False
    for char in line:
        if char == ";" and not escaped:
            break
        escaped = char == "\\" and not escaped
        out.append(char)
    return "".join(out).strip()


def _lines(text: str, source: str) -> Iterable[tuple[int, str]]:
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.lstrip().startswith(";--"):
            raise ConfError(f"{source}:{number}: block comments are not supported")
        line = strip_comment(raw)
        if line:
            yield number, line


def parse_extensions(text: str, source: str = "<text>") -> ConfFile:
    """Parse extensions.conf-style text."""
    conf = ConfFile(source)
    section: str | None = None
    last_exten: str | None = None
    next_priority: dict[tuple[str, str], int] = {}
    for number, line in _lines(text, source):
        where = f"{source}:{number}"
        if match := _SECTION.match(line):
            section = match.group(1)
            conf.sections.append(section)
            last_exten = None
            if section != "globals":
                conf.contexts.setdefault(section, Context(section))
            continue
        if section is None:
            raise ConfError(f"{where}: line outside any section: {line!r}")
        if section == "globals":
            name, equals, value = line.partition("=")
            if not equals or not name.strip():
                raise ConfError(f"{where}: expected NAME=value in [globals]: {line!r}")
            conf.globals[name.strip()] = value.strip()
            continue
        keyword, arrow, rest = line.partition("=>")
        keyword, rest = keyword.strip().lower(), rest.strip()
        context = conf.contexts[section]
        if not arrow:
            raise ConfError(f"{where}: expected 'keyword => value': {line!r}")
        if keyword == "include":
            context.includes.append(rest)
            continue
        if keyword == "exten":
            exten, _, rest = rest.partition(",")
            exten = exten.strip()
        elif keyword == "same":
            if last_exten is None:
                raise ConfError(f"{where}: 'same =>' without an 'exten =>' before it")
            exten = last_exten
        else:
            raise ConfError(f"{where}: unsupported keyword {keyword!r}")
        raw_priority, _, action = rest.partition(",")
        raw_priority, action = raw_priority.strip(), action.strip()
        prio = _PRIORITY.match(raw_priority)
        app = _APP.match(action)
        if not exten or prio is None or app is None:
            raise ConfError(f"{where}: cannot read extension line {line!r}")
        if prio.group("number") == "n":
            if (section, exten) not in next_priority:
                raise ConfError(f"{where}: priority 'n' before any numbered priority")
            priority = next_priority[section, exten]
        else:
            priority = int(prio.group("number"))
        step = Step(
            context=section,
            exten=exten,
            priority=priority,
            label=prio.group("label"),
            app=app.group("app"),
            data=app.group("data") or "",
            kind=keyword,
            raw_priority=raw_priority,
            source=source,
            line=number,
        )
        context.extensions.setdefault(exten, []).append(step)
        next_priority[section, exten] = priority + 1
        last_exten = exten
    return conf


def manager_entries(text: str, source: str = "<text>") -> dict[str, list[tuple[str, str]]]:
    """Parse manager.conf-style text: ``{section: [(key, value), ...]}`` in file order
    (keys lower-cased; a key such as ``eventfilter`` may repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for number, line in _lines(text, source):
        if match := _SECTION.match(line):
            current = sections.setdefault(match.group(1), [])
            continue
        key, equals, value = line.partition("=")
        if current is None or not equals:
            raise ConfError(f"{source}:{number}: expected 'key = value' in a section: {line!r}")
        current.append((key.strip().lower(), value.strip()))
    return sections


def parse_manager(text: str, source: str = "<text>") -> dict[str, dict[str, str]]:
    """Parse manager.conf-style text: ``{section: {key: value}}`` (last value wins)."""
    return {name: dict(entries) for name, entries in manager_entries(text, source).items()}


class Dialplan:
    """Several parsed files together, as Asterisk merges them after #include."""

    def __init__(self, files: Iterable[ConfFile]) -> None:
        self.files = list(files)
        self.globals: dict[str, str] = {}
        self.contexts: dict[str, Context] = {}
        for conf in self.files:
            self.globals.update(conf.globals)
            for name, context in conf.contexts.items():
                merged = self.contexts.setdefault(name, Context(name))
                merged.includes.extend(context.includes)
                for exten, steps in context.extensions.items():
                    merged.extensions.setdefault(exten, []).extend(steps)

    @classmethod
    def load(cls, paths: Iterable[Path], *texts: str) -> Dialplan:
        """The dialplan of these files plus extra conf texts (e.g. a test IVR)."""
        files = [parse_extensions(path.read_text(), path.name) for path in paths]
        files += [parse_extensions(text, f"<extra {i}>") for i, text in enumerate(texts)]
        return cls(files)

    def has_exten(self, context: str, exten: str) -> bool:
        return exten in self.contexts.get(context, Context(context)).extensions

    def steps(self, context: str, exten: str) -> list[Step]:
        return self.contexts[context].extensions[exten] if self.has_exten(context, exten) else []

    def find_label(self, context: str, exten: str, label: str) -> int | None:
        """The priority carrying ``label``, as Asterisk's ast_findlabel_extension."""
        for step in self.steps(context, exten):
            if step.label == label:
                return step.priority
        return None

    def find_app(self, context: str, exten: str, app: str, data_prefix: str = "") -> Step | None:
        """The first step running ``app`` (case-insensitive) whose data starts so."""
        for step in self.steps(context, exten):
            if step.app.lower() == app.lower() and step.data.startswith(data_prefix):
                return step
        return None
