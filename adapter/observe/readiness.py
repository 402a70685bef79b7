"""Readiness: the store answers and the GenerativeAgent credentials were accepted recently.

The credentials are checked at most every ``interval`` seconds with a harmless GET of
a transfer id that cannot exist: 404 means accepted, 401/403 rejected. The verdict is
cached, so a probe costs nothing; a refresh runs on a thread of its own and a probe
waits for it at most ``wait`` seconds. When the API cannot be reached, an earlier
"accepted" stands for ten intervals: an API outage is the fallback's job, and taking
every instance out of the load balancer would leave callers with nothing at all.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from adapter.genagent import (
    AuthenticationError,
    GenAgentClient,
    GenAgentError,
    NotFoundError,
    PermissionDeniedError,
)
from adapter.genagent.telemetry import status_of
from adapter.store import CallStore


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check: passed or not, and a line saying why."""

    ok: bool
    detail: str


def probe_credentials(client: GenAgentClient, deadline: float = 2.0) -> tuple[CheckResult, bool]:
    """Ask the API once; the result, and whether the API gave a verdict at all."""
    try:
        client.get_transfer(f"readiness-probe-{uuid.uuid4().hex}", deadline=deadline)
    except NotFoundError:
        return CheckResult(True, "credentials accepted"), True
    except (AuthenticationError, PermissionDeniedError) as exc:
        return CheckResult(False, f"credentials rejected ({exc.status})"), True
    except GenAgentError as exc:
        return CheckResult(False, f"no verdict: {status_of(exc)} ({type(exc).__name__})"), False
    return CheckResult(False, "no verdict: a transfer that cannot exist was found"), False


def probe_store(store: CallStore) -> CheckResult:
    """Read a record that does not exist: the store answers, or says why not."""
    try:
        store.get("readiness-probe")
    except Exception as exc:  # any failure means not ready; the type is enough to say why
        return CheckResult(False, f"store unavailable ({type(exc).__name__})")
    return CheckResult(True, "store answers")


class CredentialCheck:
    """The cached verdict on the API credentials, refreshed every ``interval`` seconds."""

    def __init__(
        self,
        client: GenAgentClient,
        interval: float = 30.0,
        *,
        wait: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._interval = interval
        self._wait = wait
        self._clock = clock
        self._lock = threading.Lock()
        self._result = CheckResult(False, "not checked yet")
        self._checked_at: float | None = None
        self._accepted_at: float | None = None
        self._refresh: threading.Event | None = None

    def result(self) -> CheckResult:
        """The latest verdict, refreshed first (waiting at most ``wait`` s) if it is old."""
        with self._lock:
            fresh = self._checked_at is not None and (
                self._clock() - self._checked_at < self._interval
            )
            done = self._refresh
            if not fresh and done is None:
                done = self._refresh = threading.Event()
                threading.Thread(target=self._run, args=(done,), daemon=True).start()
        if not fresh and done is not None:
            done.wait(self._wait)
        with self._lock:
            return self._result

    def _run(self, done: threading.Event) -> None:
        try:
            result, verdict = probe_credentials(self._client, deadline=min(self._wait, 2.0))
        except Exception as exc:  # never leave the check stuck on a refresh
            result, verdict = CheckResult(False, f"check failed ({type(exc).__name__})"), False
        with self._lock:
            now = self._clock()
            if result.ok:
                self._accepted_at = now
            elif (
                not verdict
                and self._accepted_at is not None
                and now - self._accepted_at < 10 * self._interval
            ):
                result = CheckResult(True, f"credentials accepted earlier; now {result.detail}")
            self._result, self._checked_at, self._refresh = result, now, None
        done.set()
