"""The dashboard blueprint: /dashboard (page, script, style) and /calls, /calls/<id> (JSON).

Served only when DASHBOARD_TOKEN is set; every answer, refusals included, carries a strict
Content-Security-Policy and is never cached.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib import resources

from flask import Blueprint, Flask, Response, abort, current_app, jsonify, request

from adapter.config import Secret
from adapter.dashboard.auth import challenges, presents_token
from adapter.history.listing import CallQuery, list_calls, show_call
from adapter.history.since import parse_since
from adapter.store import CallStore, StoreError

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';"
    " img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_ASSETS = {
    "/dashboard": ("dashboard.html", "text/html; charset=utf-8"),
    "/dashboard/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/dashboard/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
    "/dashboard/favicon.svg": ("favicon.svg", "image/svg+xml"),
}

dashboard = Blueprint("dashboard", __name__)


@dataclass(frozen=True, slots=True)
class _Dashboard:
    token: Secret
    store: CallStore


def register_dashboard(app: Flask, store: CallStore, token: Secret | None) -> None:
    """Serve the dashboard and /calls from ``store``; without a token they answer 404."""
    if token is not None:
        app.extensions["genagent_dashboard"] = _Dashboard(token, store)
    app.register_blueprint(dashboard)


@dashboard.before_request
def _guard() -> Response | None:
    state: _Dashboard | None = current_app.extensions.get("genagent_dashboard")
    if state is None:
        abort(404)
    bearer = request.path == "/calls" or request.path.startswith("/calls/")
    if presents_token(request, state.token, bearer=bearer):
        return None
    refused = jsonify(error="the dashboard token is required")
    refused.status_code = 401
    for name, value in challenges(bearer=bearer):
        refused.headers.add(name, value)
    return refused


@dashboard.after_request
def _harden(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    return response


@dashboard.get("/dashboard")
@dashboard.get("/dashboard/dashboard.js")
@dashboard.get("/dashboard/dashboard.css")
@dashboard.get("/dashboard/favicon.svg")
def _asset() -> Response:
    name, mimetype = _ASSETS[request.path]
    body = resources.files("adapter.dashboard").joinpath("static", name).read_bytes()
    return Response(body, mimetype=mimetype)


@dashboard.get("/calls")
def _calls() -> Response | tuple[Response, int]:
    now = time.time()
    args = request.args
    try:
        since = args.get("since")
        query = CallQuery(
            limit=int(args.get("limit", "50")),
            since=parse_since(since, now) if since else None,
            outcome=args.get("outcome") or None,
        )
    except ValueError as exc:
        return jsonify(error=str(exc)), 400
    try:
        return jsonify(list_calls(_store(), query, now))
    except StoreError:
        return jsonify(error="the call store is unavailable"), 503


@dashboard.get("/calls/<path:call_id>")
def _call(call_id: str) -> Response | tuple[Response, int]:
    try:
        call = show_call(_store(), call_id, time.time())
    except StoreError:
        return jsonify(error="the call store is unavailable"), 503
    except ValueError:
        call = None
    if call is None:
        return jsonify(error="no such call"), 404
    return jsonify(call)


def _store() -> CallStore:
    state: _Dashboard = current_app.extensions["genagent_dashboard"]
    return state.store
