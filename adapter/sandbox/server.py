"""Serve the sandbox over real HTTP: in the foreground (CLI) or on a background thread."""

from __future__ import annotations

from adapter.sandbox.app import create_sandbox_app
from adapter.sandbox.state import SandboxConfig, SandboxState
from adapter.serving import BackgroundServer


class SandboxServer(BackgroundServer):
    """A sandbox on ``host:port`` (port 0 picks a free one); ``state`` is its memory."""

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        state: SandboxState | None = None,
        quiet: bool = True,
    ) -> None:
        self.state = state or SandboxState(config)
        super().__init__(create_sandbox_app(self.state), host=host, port=port, quiet=quiet)
