"""Serve a WSGI app over real HTTP on a background thread (demo, tests, sandbox CLI)."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import TYPE_CHECKING, Self

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


class BackgroundServer:
    """A threaded HTTP server for ``app`` on ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self, app: WSGIApplication, *, host: str = "127.0.0.1", port: int = 0, quiet: bool = True
    ) -> None:
        handler = _QuietHandler if quiet else WSGIRequestHandler
        self._server: BaseWSGIServer = make_server(
            host, port, app, threaded=True, request_handler=handler
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
        """Its base URL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> Self:
        """Serve on a daemon thread; returns at once, the socket already listening."""
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # so that stop() returns promptly
            name=f"http-{self.port}",
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


class _QuietHandler(WSGIRequestHandler):
    """No access line per request (tests and the demo would drown in them)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass
