"""Call state shared by the adapter's worker processes, keyed by the platform's call id.

``open_store(url)`` picks the backend from the URL. Nothing here reads the environment:
callers pass the URL (STORE_URL in a deployment).
"""

from __future__ import annotations

from adapter.store.base import (
    CallStore,
    StaleWriteError,
    Stored,
    StoreError,
    StoreUnavailableError,
)
from adapter.store.sqlite import MEMORY, SQLiteCallStore

__all__ = [
    "DEFAULT_STORE_URL",
    "CallStore",
    "SQLiteCallStore",
    "StaleWriteError",
    "StoreError",
    "StoreUnavailableError",
    "Stored",
    "open_store",
]

DEFAULT_STORE_URL = "sqlite:///adapter.sqlite3"
ACCEPTED_URLS = (
    "sqlite:///relative/path.sqlite3, sqlite:////absolute/path.sqlite3,"
    " or sqlite://:memory: (one process only, for tests)"
)


def open_store(url: str) -> CallStore:
    """Open the call store ``url`` names; ValueError if it is not an accepted form."""
    value = url.strip()
    scheme, separator, rest = value.partition("://")
    scheme = scheme.lower()
    # Only sqlite URLs are echoed back: any other URL may carry a password.
    if not separator or not scheme:
        raise ValueError(f"STORE_URL must be a URL: {ACCEPTED_URLS}")
    if scheme in ("redis", "rediss"):
        raise StoreError(
            "the Redis call store is not available yet; set STORE_URL to a sqlite:// URL"
        )
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
