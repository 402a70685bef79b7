"""Logging for every process: LOG_LEVEL sets the threshold, LOG_FORMAT=json one object a line.

Call facts travel as ``extra=`` fields (call_id, outcome, route, ...): the text format
appends them as ``key=value``, the JSON format as keys of their own. Every message goes
through ``mask_text`` on the way out, a safety net for a phone number that slipped into
one; call ids and transfer ids are left alone by it.

Under gunicorn, ``gunicorn.conf.py`` hands ``logging_dict()`` to gunicorn, so its own
error log is formatted the same way; ``configure_logging()`` does the same for the CLI.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import time
from collections.abc import Mapping
from typing import Any

from adapter.observe.masking import mask_text, safe_id

#: Fields a log call may pass with ``extra=``; both formats print them when present.
CALL_FIELDS = (
    "call_id",
    "handoff",
    "attempt",
    "transfer_id",
    "outcome",
    "route",
    "reason",
    "status",
    "code",
    "request_id",
    "endpoint",
    "url",
    "duration_ms",
)
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("text", "json")
# Chatty libraries, quiet unless LOG_LEVEL=DEBUG asks for everything.
_QUIET_LIBRARIES = ("httpx", "httpcore", "werkzeug", "urllib3")


# Ids are what an operator searches for: kept whole (only control characters replaced).
_ID_FIELDS = frozenset({"call_id", "transfer_id", "request_id"})


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in CALL_FIELDS:
        value = getattr(record, name, None)
        if value is None:
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            found[name] = value
        else:
            found[name] = safe_id(str(value), 256) if name in _ID_FIELDS else mask_text(str(value))
    return found


def _quoted(value: Any) -> str:
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if not text or " " in text else text


def _iso_time(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


class TextFormatter(logging.Formatter):
    """``2026-12-01T15:00:00.123Z INFO adapter.flow: message key=value ...``."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_iso_time(record.created)} {record.levelname} {record.name}: "
        line += mask_text(record.getMessage())
        extras = " ".join(f"{k}={_quoted(v)}" for k, v in _fields(record).items())
        if extras:
            line += " " + extras
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, then the call fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_text(record.getMessage()),
            **_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class LoggingSettings:
    """LOG_LEVEL and LOG_FORMAT, checked."""

    def __init__(self, level: str = "INFO", fmt: str = "text") -> None:
        level, fmt = level.strip().upper(), fmt.strip().lower()
        if level not in LEVELS:
            raise ValueError(f"LOG_LEVEL must be one of {', '.join(LEVELS)}, got {level[:20]!r}")
        if fmt not in FORMATS:
            raise ValueError(f"LOG_FORMAT must be text or json, got {fmt[:20]!r}")
        self.level, self.format = level, fmt

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, level: str | None = None
    ) -> LoggingSettings:
        """From the environment; ``level`` (a command-line flag) wins over LOG_LEVEL."""
        env = os.environ if env is None else env
        return cls(level or env.get("LOG_LEVEL") or "INFO", env.get("LOG_FORMAT") or "text")


def logging_dict(settings: LoggingSettings) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the root logger and gunicorn's loggers."""
    formatter = JsonFormatter if settings.format == "json" else TextFormatter
    quiet = "DEBUG" if settings.level == "DEBUG" else "WARNING"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"adapter": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "adapter",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": settings.level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
            # Off: its lines carry query strings, where caller variables travel.
            "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
            **{name: {"level": quiet} for name in _QUIET_LIBRARIES},
        },
    }


def configure_logging(
    level: str | None = None,
    env: Mapping[str, str] | None = None,
    *,
    only_if_unset: bool = False,
) -> LoggingSettings:
    """Install the adapter's logging on the root logger (ValueError on a bad setting).

    ``only_if_unset`` leaves a root logger that already has handlers alone (gunicorn
    configured by ``gunicorn.conf.py``, a test harness).
    """
    settings = LoggingSettings.from_env(env, level)
    logging.captureWarnings(True)  # warnings become log lines, in the same format
    if not (only_if_unset and logging.getLogger().handlers):
        logging.config.dictConfig(logging_dict(settings))
    return settings
