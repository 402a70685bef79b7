"""What this process holds open, and how it connects: for tests that look for leaks."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from typing import Any


def open_sockets() -> int:
    """Sockets this process has open (any kind, any peer)."""
    return len(_socket_inodes())


def _socket_inodes() -> set[str]:
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    return inodes


def sockets_to(port: int) -> int:
    """This process's TCP sockets whose peer is 127.0.0.1:``port`` (any state)."""
    inodes = _socket_inodes()
    count = 0
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            remote_port = int(fields[2].split(":")[1], 16)
            if remote_port == port and fields[9] in inodes:
                count += 1
    return count


class ConnectionAttempts:
    """Counts the loop's ``create_connection`` calls to one port, and how many at once.

    It wraps the running loop's method, so every caller is seen: the worker's own
    connect and any reconnect panoramisk would schedule."""

    def __init__(self, loop: asyncio.AbstractEventLoop, port: Callable[[], int]) -> None:
        self.started = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self._port = port
        original = loop.create_connection

        async def counted(*args: Any, **kwargs: Any) -> Any:
            port_asked = args[2] if len(args) > 2 else kwargs.get("port")
            if port_asked != self._port():
                return await original(*args, **kwargs)
            self.started += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                return await original(*args, **kwargs)
            finally:
                self.in_flight -= 1

        loop.create_connection = counted  # type: ignore[method-assign]
