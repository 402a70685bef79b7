"""``genagent-adapter check``: the whole configuration, the store, the API, Asterisk.

One line per check, ``PASS``, ``FAIL`` or ``SKIP``, naming what failed. Exit status:
0 all passed, 1 something could not be reached or was refused, 2 a setting is wrong.
Usable as a PaaS release-phase command: a bad deployment is stopped before it serves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TextIO

from adapter.config import ConfigError, EnvReader, GenAgentSettings
from adapter.genagent import GenAgentClient
from adapter.observe.logging import LoggingSettings
from adapter.observe.masking import mask_url
from adapter.observe.readiness import probe_credentials, probe_store
from adapter.observe.settings import ObserveSettings
from adapter.store import StoreOptions, open_store, read_store_url


@dataclass(frozen=True, slots=True)
class Line:
    """One check's verdict."""

    status: str  # PASS, FAIL or SKIP
    name: str
    detail: str

    def __str__(self) -> str:
        return f"{self.status:<5} {self.name}: {self.detail}"


def _settings(name: str, read: Callable[[], object]) -> Line:
    try:
        read()
    except (ConfigError, ValueError) as exc:
        problems = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
        return Line("FAIL", name, "; ".join(problems))
    return Line("PASS", name, "valid")


def _store(url: str, options: StoreOptions) -> Line:
    try:
        store = open_store(url, options)
    except Exception as exc:  # a bad URL or an unreachable store: say which
        return Line("FAIL", "call store", f"cannot open {mask_url(url)}: {exc}")
    try:
        result = probe_store(store)
    finally:
        store.close()
    return Line("PASS" if result.ok else "FAIL", "call store", f"{result.detail} ({mask_url(url)})")


def _api(settings: GenAgentSettings) -> Line:
    with GenAgentClient(settings) as client:
        result, _ = probe_credentials(client, deadline=min(settings.deadline, 5.0))
    where = mask_url(settings.base_url)
    return Line(
        "PASS" if result.ok else "FAIL", "GenerativeAgent API", f"{result.detail} ({where})"
    )


async def _asterisk(env: Mapping[str, str]) -> list[Line]:
    from adapter.asterisk import WorkerSettings
    from adapter.asterisk.ami import AmiSession
    from adapter.asterisk.messages import AmiError
    from adapter.asterisk.worker import REQUIRED_CONTEXTS

    ami = WorkerSettings.from_env(env).ami
    session = AmiSession(
        ami.host, ami.port, ami.username, ami.secret, action_timeout=ami.action_timeout
    )
    name = "Asterisk manager interface"
    try:
        await session.open({})
    except AmiError as exc:
        return [Line("FAIL", name, str(exc))]
    lines = [Line("PASS", name, f"logged in to {ami.host}:{ami.port} as {ami.username}")]
    try:
        missing = [c for c in REQUIRED_CONTEXTS if not await session.has_extension(c, "s")]
    except AmiError as exc:
        return [*lines, Line("FAIL", "Asterisk dialplan", f"cannot read it: {exc}")]
    finally:
        session.close()
    if missing:
        detail = f"no extension s in {', '.join(missing)} (include asterisk_conf/, dialplan reload)"
        return [*lines, Line("FAIL", "Asterisk dialplan", detail)]
    return [*lines, Line("PASS", "Asterisk dialplan", f"{len(REQUIRED_CONTEXTS)} contexts present")]


def run_checks(env: Mapping[str, str], out: TextIO) -> int:
    """Run every check, print one line each; the exit status."""
    from adapter.asterisk import WorkerSettings
    from adapter.web import WebSettings

    reader = EnvReader(env)
    asterisk = reader.text("AMI_HOST") is not None
    twilio = reader.text("TWILIO_AUTH_TOKEN") is not None or not asterisk
    lines = [
        _settings("logging settings", lambda: LoggingSettings.from_env(env)),
        _settings("metrics and readiness settings", lambda: ObserveSettings.from_env(env)),
    ]
    if twilio:
        lines.append(_settings("Twilio web app settings", lambda: WebSettings.from_env(env)))
    if asterisk:
        lines.append(_settings("Asterisk worker settings", lambda: WorkerSettings.from_env(env)))
    for line in lines:
        print(line, file=out, flush=True)
    if any(line.status == "FAIL" for line in lines):
        print(Line("SKIP", "connections", "fix the settings first"), file=out)
        return 2
    failed = False
    for check in (_store_and_api, _asterisk_or_skip):
        for line in check(env):
            print(line, file=out, flush=True)
            failed = failed or line.status == "FAIL"
    return 1 if failed else 0


def _store_and_api(env: Mapping[str, str]) -> list[Line]:
    reader = EnvReader(env)
    url, options = read_store_url(reader), StoreOptions.read(reader)
    return [_store(url, options), _api(GenAgentSettings.from_env(env))]


def _asterisk_or_skip(env: Mapping[str, str]) -> list[Line]:
    if EnvReader(env).text("AMI_HOST") is None:
        return [Line("SKIP", "Asterisk", "AMI_HOST is not set: Asterisk checks skipped")]
    return asyncio.run(_asterisk(env))
