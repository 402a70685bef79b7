"""Settings of the call store beyond its URL, read once at start-up.

STORE_URL names the store; when it is unset, REDIS_URL (the variable a PaaS's Redis
add-on sets) is used, and SQLite on local disk is the default otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapter.config import EnvReader

DEFAULT_STORE_URL = "sqlite:///adapter.sqlite3"
DEFAULT_KEY_PREFIX = "genagent:"


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """How to use a Redis call store (the SQLite store ignores them)."""

    key_prefix: str = DEFAULT_KEY_PREFIX
    retention_hours: float = 24.0
    tls_verify: bool = True
    timeout: float = 1.0
    connect_timeout: float = 0.5
    max_connections: int = 50

    @property
    def retention_seconds(self) -> float:
        """The retention period in seconds: a record's time to live after each write."""
        return self.retention_hours * 3600.0

    @classmethod
    def read(cls, env: EnvReader, retention_hours: float = 24.0) -> StoreOptions:
        """Read the STORE_* options; problems are collected in ``env``. The retention
        (STORE_RETENTION_HOURS) is the flow policy's, which reads it once for both."""
        return cls(
            key_prefix=env.text("STORE_KEY_PREFIX", DEFAULT_KEY_PREFIX) or DEFAULT_KEY_PREFIX,
            retention_hours=retention_hours,
            tls_verify=env.boolean("STORE_TLS_VERIFY", True),
            timeout=env.number("STORE_TIMEOUT", 1.0, minimum=0.05, maximum=10),
        )


def read_store_url(env: EnvReader) -> str:
    """STORE_URL, else REDIS_URL, else the SQLite default."""
    return env.text("STORE_URL") or env.text("REDIS_URL") or DEFAULT_STORE_URL
