"""The sandbox of bench/asterisk_worker.py, timing its own API answers.

Served by gunicorn as ``bench.asterisk.sandbox:create_app()`` with the worker class
``bench.asterisk.sandbox.TimedThreadWorker`` (one process; the state is in its memory).
The app is ``adapter.sandbox.app:create_sandbox_app_from_env()`` unchanged, wrapped in a
WSGI middleware that records, for every API request, when gunicorn saw the request's
socket become readable (``ready``: so the wait for a free thread and the parsing count as
the API's time), when the app was called, and when the last byte of the answer had been
written (``end``: when gunicorn, having written the last chunk, asks the body for more).
Times are ``time.monotonic()`` (CLOCK_MONOTONIC, shared by every process on Linux), so
the benchmark can line them up with the fake Asterisk's timestamps.

``GET /bench/timings`` returns the records, ``DELETE /bench/timings`` forgets them.
Nothing here changes the sandbox's behaviour or its answers.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from gunicorn.workers.gthread import ThreadWorker  # type: ignore[import-untyped]

from adapter.sandbox.app import create_sandbox_app_from_env

API_PREFIX = "/generativeagent/v1/call-transfers"
TIMINGS_PATH = "/bench/timings"

_local = threading.local()

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class TimedThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's gthread worker, noting when each request's connection became ready."""

    def enqueue_req(self, conn: Any) -> None:
        # Called on the main thread when a kept-alive socket turns readable (or a new
        # connection is accepted), before the connection waits for a pool thread.
        conn.bench_ready_at = time.monotonic()
        super().enqueue_req(conn)

    def handle(self, conn: Any) -> Any:
        _local.ready_at = getattr(conn, "bench_ready_at", None)
        try:
            return super().handle(conn)
        finally:
            _local.ready_at = None


class _Recorder:
    """API request timings: (method, path, status, transfer id, ready, start, end)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[tuple[str, str, int, str, float, float, float]] = []

    def add(self, row: tuple[str, str, int, str, float, float, float]) -> None:
        with self._lock:
            self._rows.append(row)

    def take(self) -> list[tuple[str, str, int, str, float, float, float]]:
        with self._lock:
            return list(self._rows)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()


class _TimedBody:
    """The app's body iterator; ``close()`` (after the last byte is sent) ends the timing."""

    def __init__(
        self, body: Iterable[bytes], keep: bool, done: Callable[[bytes, float], None]
    ) -> None:
        self._body = body
        self._keep = keep  # keep the bytes (a create's answer names the transfer)
        self._chunks: list[bytes] = []
        self._done = done
        self._sent_at: float | None = None

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._body:
            if self._keep:
                self._chunks.append(chunk)
            yield chunk
        # gunicorn asks for the next chunk once it has written the last one: the answer
        # is out (Content-Length responses: nothing more is written at close()).
        self._sent_at = time.monotonic()

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._done(b"".join(self._chunks), self._sent_at or time.monotonic())


class TimedSandbox:
    """WSGI middleware: time every API request; serve the timings at /bench/timings."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.recorder = _Recorder()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        method = str(environ.get("REQUEST_METHOD", "GET"))
        if path == TIMINGS_PATH:
            return self._timings(method, start_response)
        start = time.monotonic()
        if not path.startswith(API_PREFIX):
            return self.app(environ, start_response)
        ready = getattr(_local, "ready_at", None) or start
        status: list[int] = [0]

        def recording_start_response(code: str, headers: Any, *rest: Any) -> Any:
            status[0] = int(code.split(" ", 1)[0])
            return start_response(code, headers, *rest)

        is_create = method == "POST" and path == API_PREFIX
        transfer_id = "" if is_create else path[len(API_PREFIX) + 1 :]

        def done(body: bytes, end: float) -> None:
            found = transfer_id
            if is_create and body:
                try:
                    found = str(json.loads(body).get("id", ""))
                except (ValueError, AttributeError):
                    found = ""
            self.recorder.add((method, path, status[0], found, ready, start, end))

        body = self.app(environ, recording_start_response)
        return _TimedBody(body, is_create, done)

    def _timings(self, method: str, start_response: StartResponse) -> Iterable[bytes]:
        if method == "DELETE":
            self.recorder.clear()
            payload = b'{"cleared": true}'
        else:
            rows = self.recorder.take()
            keys = ("method", "path", "status", "transferId", "ready", "start", "end")
            records = [dict(zip(keys, row, strict=True)) for row in rows]
            payload = json.dumps({"requests": records}).encode()
        start_response(
            "200 OK",
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
        )
        return [payload]


def create_app() -> TimedSandbox:
    """The sandbox app from the environment (SANDBOX_*), with the timing middleware."""
    return TimedSandbox(create_sandbox_app_from_env())
