"""Call state shared by the adapter's worker processes, keyed by the platform's call id.

``open_store(url, options)`` picks the backend from the URL: SQLite (the embedded
default, one machine) or Redis (any number of instances). Nothing here reads the
environment by itself: the settings readers pass an EnvReader to ``read_store_url`` and
``StoreOptions.read``.
"""

from __future__ import annotations

from adapter.store.base import (
    CallStore,
    StaleWriteError,
    Stored,
    StoreError,
    StoreUnavailableError,
    WriteWouldWait,
)
from adapter.store.options import DEFAULT_STORE_URL, StoreOptions, read_store_url
from adapter.store.redis import RedisCallStore
from adapter.store.sqlite import MEMORY, SQLiteCallStore

__all__ = [
    "DEFAULT_STORE_URL",
    "CallStore",
    "RedisCallStore",
    "SQLiteCallStore",
    "StaleWriteError",
    "StoreError",
    "StoreOptions",
    "StoreUnavailableError",
    "Stored",
    "WriteWouldWait",
    "open_store",
    "read_store_url",
]

ACCEPTED_URLS = (
    "sqlite:///relative/path.sqlite3, sqlite:////absolute/path.sqlite3,"
    " sqlite://:memory: (one process only, for tests),"
    " redis://[:password@]host[:port][/db] or rediss://... (TLS)"
)


def open_store(url: str, options: StoreOptions | None = None) -> CallStore:
    """Open the call store ``url`` names; ValueError if it is not an accepted form."""
    value = url.strip()
    scheme, separator, rest = value.partition("://")
    scheme = scheme.lower()
    # Only sqlite URLs are echoed back: any other URL may carry a password.
    if not separator or not scheme:
        raise ValueError(f"STORE_URL must be a URL: {ACCEPTED_URLS}")
    if scheme in ("redis", "rediss"):
        return RedisCallStore(value, options)
    if scheme != "sqlite":
        raise ValueError(f"STORE_URL scheme {scheme[:20]!r} is not supported; use {ACCEPTED_URLS}")
    if rest == MEMORY:
        return SQLiteCallStore(MEMORY)
    # sqlite:/// + a relative path, sqlite:/// + /an/absolute/path.
    path = rest[1:] if rest.startswith("/") else ""
    if not path or path == MEMORY or path.endswith("/") or any(ch in path for ch in "?#"):
        raise ValueError(
            f"STORE_URL {value[:120]!r} is not a valid sqlite URL; use {ACCEPTED_URLS}"
        )
    return SQLiteCallStore(path)
