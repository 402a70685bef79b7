"""Logging set-up and helpers that keep caller data out of log lines."""

from __future__ import annotations

import logging
import os


def configure_logging(level: str | None = None) -> None:
    """One line per record on stderr; LOG_LEVEL (default INFO) sets the threshold."""
    name = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    logging.basicConfig(
        level=getattr(logging, name, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def mask_number(number: str | None) -> str:
    """A phone number reduced to its last two digits, for log lines."""
    if not number:
        return "-"
    return "***" + number[-2:] if len(number) > 4 else "***"
