"""/metrics and /readyz for the web app, and the AMI worker's metrics server.

/metrics answers only when METRICS_TOKEN is set (404 otherwise), and only to
``Authorization: Bearer <METRICS_TOKEN>`` (401 otherwise, compared in constant time).
/readyz is 200 when every check passes, 503 otherwise, with each check named in the
JSON body; /healthz stays plain liveness.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from flask import Blueprint, Flask, Response, abort, current_app, g, jsonify, request

from adapter.config import Secret
from adapter.genagent import GenAgentClient
from adapter.observe.metrics import WEBHOOK_LATENCY, exposition
from adapter.observe.readiness import CredentialCheck, probe_store
from adapter.observe.settings import ObserveSettings
from adapter.serving import BackgroundServer
from adapter.store import CallStore

observe = Blueprint("observe", __name__)
_WEBHOOKS = {
    "twilio.voice": "voice",
    "twilio.dial_result": "dial-result",
    "twilio.status": "status",
}


@dataclass(frozen=True, slots=True)
class _Observed:
    token: Secret | None
    store: CallStore | None = None
    credentials: CredentialCheck | None = None


def _observed() -> _Observed:
    found: _Observed = current_app.extensions["genagent_observe"]
    return found


def bearer_matches(header: str, token: Secret) -> bool:
    """True if ``header`` is ``Bearer <token>`` (constant-time comparison)."""
    expected = f"Bearer {token.reveal()}".encode()
    return secrets.compare_digest(header.strip().encode("utf-8", "replace"), expected)


@observe.get("/metrics")
def metrics() -> Response:
    """Prometheus exposition, behind the bearer token."""
    token = _observed().token
    if token is None:
        abort(404)
    if not bearer_matches(request.headers.get("Authorization", ""), token):
        return Response(
            "unauthorized\n", 401, {"WWW-Authenticate": "Bearer"}, mimetype="text/plain"
        )
    body, content_type = exposition()
    return Response(body, 200, content_type=content_type)


@observe.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Readiness: the store answers and the API credentials were accepted recently."""
    observed = _observed()
    if observed.store is None or observed.credentials is None:
        abort(404)
    checks = {
        "store": probe_store(observed.store),
        "genagent_api": observed.credentials.result(),
    }
    ready = all(check.ok for check in checks.values())
    body = {
        "status": "ready" if ready else "not ready",
        "checks": {name: {"ok": c.ok, "detail": c.detail} for name, c in checks.items()},
    }
    return jsonify(body), 200 if ready else 503


def _start_timer() -> None:
    g.genagent_started = time.monotonic()


def _time_webhook(response: Response) -> Response:
    timer = _TIMERS.get(request.endpoint or "")
    started = g.get("genagent_started")
    if timer is not None and started is not None:
        timer.observe(time.monotonic() - started)
    return response


# One histogram child per webhook, looked up once (labels() locks on every call).
_TIMERS = {endpoint: WEBHOOK_LATENCY.labels(name) for endpoint, name in _WEBHOOKS.items()}


def install(
    app: Flask, settings: ObserveSettings, store: CallStore, client: GenAgentClient
) -> None:
    """Add /metrics, /readyz and webhook timing to the web app."""
    credentials = CredentialCheck(client, settings.ready_check_interval)
    app.extensions["genagent_observe"] = _Observed(settings.metrics_token, store, credentials)
    app.before_request(_start_timer)
    app.after_request(_time_webhook)
    app.register_blueprint(observe)


def metrics_server(token: Secret, port: int, host: str = "0.0.0.0") -> BackgroundServer:  # noqa: S104
    """The AMI worker's /metrics on ``port``, with the same token rule (not started)."""
    app = Flask("adapter.metrics")
    app.extensions["genagent_observe"] = _Observed(token)
    app.register_blueprint(observe)
    return BackgroundServer(app, host=host, port=port)
