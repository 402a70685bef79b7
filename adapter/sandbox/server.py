"""Serve the sandbox over real HTTP: in the foreground (CLI) or on a background thread."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Self

from werkzeug.serving import BaseWSGIServer, make_server

from adapter.sandbox.app import create_sandbox_app
from adapter.sandbox.state import SandboxConfig, SandboxState


class SandboxServer:
    """A sandbox on ``host:port`` (port 0 picks a free one), serving on its own thread."""

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        state: SandboxState | None = None,
    ) -> None:
        self.state = state or SandboxState(config)
        self._server: BaseWSGIServer = make_server(
            host, port, create_sandbox_app(self.state), threaded=True
        )
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        """The address it listens on."""
        return str(self._server.host)

    @property
    def port(self) -> int:
        """The port it listens on (the real one when 0 was asked for)."""
        return int(self._server.port)

    @property
    def url(self) -> str:
        """Base URL to give a client as GA_API_BASE_URL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> Self:
        """Serve on a daemon thread; returns at once, the socket already listening."""
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # so that stop() returns promptly
            name="genagent-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve on this thread until interrupted."""
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
