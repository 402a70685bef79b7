"""Call history: every call's outcome and timeline, read from the call store, masked.

``read_call`` is the one place that reads a stored record; the CLI (``genagent-adapter
calls``), the JSON endpoints (``/calls``) and the dashboard all go through it.
"""

from __future__ import annotations

from adapter.history.listing import CallQuery, list_calls, show_call
from adapter.history.since import parse_since
from adapter.history.view import CallView, read_call

__all__ = ["CallQuery", "CallView", "list_calls", "parse_since", "read_call", "show_call"]
