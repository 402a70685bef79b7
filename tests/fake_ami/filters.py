"""manager.conf ``eventfilter`` lines (the legacy form), applied as Asterisk's manager.c does.

A filter is a POSIX extended regular expression searched in the whole text of an event
(``Event: ...`` CRLF lines); a leading ``!`` makes it an exclude filter. No filter: every
event. Include filters only: an event matching any of them. Exclude filters only: every
event matching none. Both: an event matching an include filter and no exclude filter
(``match_filter`` in Asterisk 20, ``should_send_event`` in 22). Filters apply to the
events Asterisk queues for its sessions only: answers to actions, list items such as
``CoreShowChannel``, ``Status`` or ``ListDialplan`` included, are written to the
session directly and never filtered.

Python's ``re`` stands in for POSIX regex: the character classes ``[:space:]`` and the
like are translated; the patterns ``asterisk_conf/`` ships use nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_POSIX_CLASSES = {
    "[:space:]": r"\s",
    "[:blank:]": r" \t",
    "[:digit:]": r"0-9",
    "[:alpha:]": r"A-Za-z",
    "[:alnum:]": r"A-Za-z0-9",
    "[:upper:]": r"A-Z",
    "[:lower:]": r"a-z",
    "[:xdigit:]": r"0-9A-Fa-f",
}
_ANY_CLASS = re.compile(r"\[:[a-z]+:\]")


def posix_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` (POSIX ERE) compiled with Python's ``re``; ValueError if it cannot be."""

    def expand(match: re.Match[str]) -> str:
        name = match.group(0)
        if name not in _POSIX_CLASSES:
            raise ValueError(f"unsupported character class {name} in {pattern!r}")
        return _POSIX_CLASSES[name]

    try:
        # Without REG_NEWLINE, POSIX '.' matches a line break too, '^' and '$' only the ends.
        return re.compile(_ANY_CLASS.sub(expand, pattern), re.DOTALL)
    except re.error as exc:
        raise ValueError(f"bad eventfilter {pattern!r}: {exc}") from None


@dataclass(frozen=True, slots=True)
class EventFilters:
    """One manager user's ``eventfilter`` lines, split as Asterisk keeps them."""

    include: tuple[re.Pattern[str], ...] = ()
    exclude: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def parse(cls, lines: Iterable[str]) -> EventFilters:
        """The filters of these ``eventfilter`` values, in file order."""
        include: list[re.Pattern[str]] = []
        exclude: list[re.Pattern[str]] = []
        for line in lines:
            if line.startswith("!"):
                exclude.append(posix_regex(line[1:]))
            else:
                include.append(posix_regex(line))
        return cls(tuple(include), tuple(exclude))

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude)

    def allows(self, text: str) -> bool:
        """Whether an event with this wire text reaches the user."""
        if self.include and not any(p.search(text) for p in self.include):
            return False
        return not any(p.search(text) for p in self.exclude)


NO_FILTERS = EventFilters()
