"""Logging set-up for the command line."""

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
