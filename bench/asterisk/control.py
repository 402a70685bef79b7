"""The loopback control channel to the fake Asterisk process (JSON lines)."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Any

from bench.voice_webhook.processes import HOST


class BenchError(Exception):
    """The run could not be set up or carried out."""


# --- the fake's control channel ----------------------------------------------------------


class Control:
    """JSON lines over a loopback socket to the fake Asterisk process."""

    def __init__(self, port: int, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        self.port = port
        self.proc = proc
        self.log_path = log_path
        self._sock: socket.socket | None = None
        self._file: IO[bytes] | None = None

    def connect(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"the fake Asterisk exited at start-up:\n{self.log_tail()}")
            try:
                self._sock = socket.create_connection((HOST, self.port), timeout=2.0)
                self._file = self._sock.makefile("rb")
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"the fake Asterisk's control port did not open:\n{self.log_tail()}"
                    ) from None
                time.sleep(0.2)

    def request(self, command: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        if self._sock is None or self._file is None:
            raise BenchError("not connected to the fake Asterisk")
        self._sock.settimeout(timeout)
        self._sock.sendall(json.dumps(command).encode() + b"\n")
        try:
            line = self._file.readline()
        except TimeoutError:
            raise BenchError(f"the fake Asterisk did not answer {command['cmd']!r}") from None
        if not line:
            raise BenchError(f"the fake Asterisk closed the control channel:\n{self.log_tail()}")
        answer: dict[str, Any] = json.loads(line)
        if not answer.get("ok"):
            raise BenchError(f"the fake Asterisk refused {command['cmd']!r}: {answer}")
        return answer

    def quit(self) -> None:
        """Ask the fake to stop (between waves only: it answers one command at a time)."""
        with contextlib.suppress(OSError, BenchError):
            if self._sock is not None and self.proc.poll() is None:
                self.request({"cmd": "quit"}, timeout=5.0)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._sock is not None:
            self._sock.close()

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.log_path, lines)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
