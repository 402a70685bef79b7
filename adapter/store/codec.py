"""Argument checks and the JSON encoding every call store shares.

Stored data holds caller variables and phone numbers: errors name the call, never the data.
"""

from __future__ import annotations

import json
from typing import Any

from adapter.store.base import StoreError


def check_id(call_id: str) -> None:
    """ValueError unless ``call_id`` is a non-empty string."""
    if not isinstance(call_id, str) or not call_id:
        raise ValueError("call_id must be a non-empty string")


def check_limit(limit: int) -> None:
    """ValueError if ``limit`` is negative."""
    if limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")


def encode(data: dict[str, Any]) -> str:
    """Compact JSON of a call's data; TypeError/ValueError for what JSON cannot hold."""
    if not isinstance(data, dict):
        raise TypeError(f"call data must be a dict, got {type(data).__name__}")
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


def decode(call_id: str, text: str) -> dict[str, Any]:
    """The data of a stored record; StoreError naming the call if it is not a JSON object."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        data = None
    if not isinstance(data, dict):
        raise StoreError(f"call {call_id!r}: stored data is not a JSON object")
    return data
