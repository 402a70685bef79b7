"""Log lines: both formats, the call fields, masking, and the settings that choose them."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapter.observe.logging import (
    CALL_FIELDS,
    JsonFormatter,
    LoggingSettings,
    TextFormatter,
    logging_dict,
)


def record(
    message: str, *args: object, level: int = logging.INFO, **extra: object
) -> logging.LogRecord:
    entry = logging.LogRecord("adapter.test", level, __file__, 1, message, args, None)
    for name, value in extra.items():
        setattr(entry, name, value)
    return entry


def test_json_line_has_the_stable_fields_and_the_call_fields() -> None:
    line = JsonFormatter().format(
        record(
            "call %s routed: %s",
            "CA0123456789abcdef0123456789abcdef",
            "agent",
            call_id="CA0123456789abcdef0123456789abcdef",
            attempt=2,
            outcome="agent-returned",
            route="agent",
            duration_ms=12.5,
        )
    )
    entry = json.loads(line)
    assert entry["level"] == "INFO"
    assert entry["logger"] == "adapter.test"
    assert entry["message"] == "call CA0123456789abcdef0123456789abcdef routed: agent"
    assert entry["time"].endswith("Z")
    assert entry["call_id"] == "CA0123456789abcdef0123456789abcdef"  # never masked
    assert entry["attempt"] == 2
    assert entry["duration_ms"] == 12.5
    assert "handoff" not in entry  # absent fields are left out, not null


def test_text_line_has_time_level_logger_and_quoted_fields() -> None:
    line = TextFormatter().format(
        record("routed", level=logging.WARNING, reason="the agent hung up", route="fallback")
    )
    stamp, level, logger, rest = line.split(" ", 3)
    assert stamp.endswith("Z")
    assert (level, logger) == ("WARNING", "adapter.test:")
    assert rest == 'routed route=fallback reason="the agent hung up"'


def test_a_phone_number_that_slipped_into_a_message_is_masked() -> None:
    entry = json.loads(
        JsonFormatter().format(record("dialing %s", "+14155550123", reason="to +1 415 555 0199"))
    )
    assert "4155550123" not in entry["message"]
    assert entry["message"].endswith("***23")
    assert "555 0199" not in entry["reason"]


def test_an_exception_travels_inside_the_json_line() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        entry = record("failed", level=logging.ERROR)
        entry.exc_info = sys.exc_info()
    line = JsonFormatter().format(entry)
    assert "\n" not in line
    assert "RuntimeError: boom" in json.loads(line)["exception"]


@given(
    message=st.text(),
    fields=st.dictionaries(
        st.sampled_from(CALL_FIELDS),
        st.one_of(st.text(), st.integers(), st.floats(allow_nan=False)),
    ),
)
def test_every_json_line_is_one_parseable_object(message: str, fields: dict[str, object]) -> None:
    line = JsonFormatter().format(record(message, **fields))
    assert "\n" not in line
    entry = json.loads(line)
    assert {"time", "level", "logger", "message"} <= entry.keys()
    assert set(entry) - {"time", "level", "logger", "message"} <= set(CALL_FIELDS)


@given(message=st.text())
def test_a_text_line_cannot_be_forged_by_a_message(message: str) -> None:
    assert "\n" not in TextFormatter().format(record("%s", message))


def test_settings_are_checked() -> None:
    assert LoggingSettings.from_env({"LOG_LEVEL": "debug", "LOG_FORMAT": "JSON"}).format == "json"
    assert LoggingSettings.from_env({"LOG_LEVEL": "debug"}, level="ERROR").level == "ERROR"
    with pytest.raises(ValueError, match="LOG_LEVEL"):
        LoggingSettings.from_env({"LOG_LEVEL": "LOUD"})
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        LoggingSettings.from_env({"LOG_FORMAT": "xml"})


def test_http_client_lines_are_quiet_unless_debug() -> None:
    info = logging_dict(LoggingSettings("INFO"))["loggers"]
    debug = logging_dict(LoggingSettings("DEBUG"))["loggers"]
    assert info["httpx"]["level"] == "WARNING"
    assert debug["httpx"]["level"] == "DEBUG"
    assert info["gunicorn.error"]["propagate"] is True


def test_warnings_become_json_lines_too() -> None:
    script = (
        "import logging, warnings\n"
        "from adapter.observe.logging import configure_logging\n"
        "configure_logging(env={'LOG_FORMAT': 'json', 'LOG_LEVEL': 'INFO'})\n"
        "warnings.warn('a deprecated thing')\n"
        "logging.getLogger('adapter.test').info('hello', extra={'call_id': 'CA1'})\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    assert [e["logger"] for e in entries] == ["py.warnings", "adapter.test"]
    assert entries[0]["level"] == "WARNING"
    assert "a deprecated thing" in entries[0]["message"]
    assert entries[1]["call_id"] == "CA1"


@given(st.from_regex(r"[0-9]{6,12}(\.[0-9]{1,4})?(-[0-9])?", fullmatch=True))
def test_ids_are_never_masked(call_id: str) -> None:
    entry = json.loads(JsonFormatter().format(record("x", call_id=call_id, transfer_id=call_id)))
    assert entry["call_id"] == entry["transfer_id"] == call_id


def test_gunicorn_builds_no_access_log_line() -> None:
    from gunicorn.config import Config
    from gunicorn.glogging import Logger

    from adapter.observe import gunicorn_hooks

    # An access log to stdout would be on for gunicorn's own logger class; loggers built
    # here are closed again so that no other test sees their handlers.
    config = Config()
    config.set("accesslog", "-")
    theirs, quiet = Logger(config), gunicorn_hooks.logger_class(config)
    try:
        assert theirs.access_log_enabled  # gunicorn's own would build each line
        assert quiet.access_log_enabled is False
        quiet.access(None, None, {}, None)  # nothing is read from the request: nothing built
    finally:
        for name in ("gunicorn.error", "gunicorn.access"):
            logging.getLogger(name).handlers.clear()
