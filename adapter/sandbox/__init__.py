"""A local, stateful emulator of the GenerativeAgent call-transfers API.

Used by the demo and the tests, and by anyone who wants to try the adapter without
ASAPP credentials. See the README for its control endpoints.
"""

from adapter.sandbox.app import create_sandbox_app
from adapter.sandbox.server import SandboxServer
from adapter.sandbox.state import SandboxConfig, SandboxError, SandboxState

__all__ = ["SandboxConfig", "SandboxError", "SandboxServer", "SandboxState", "create_sandbox_app"]
