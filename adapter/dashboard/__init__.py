"""The live dashboard (/dashboard) and the call history as JSON (/calls), behind a token."""

from __future__ import annotations

from adapter.dashboard.auth import read_dashboard_token
from adapter.dashboard.views import register_dashboard

__all__ = ["read_dashboard_token", "register_dashboard"]
