"""The sandbox's HTTP face: the call-transfers API plus control endpoints.

``/generativeagent/v1/call-transfers`` behaves like ASAPP's API (auth headers,
validation, documented error bodies, 409, 404, expiry). ``/sandbox/...`` lets a
test, the demo or a person play GenerativeAgent's side and inject faults.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request

from adapter.config import EnvReader
from adapter.genagent.requests import MAX_BODY_BYTES
from adapter.sandbox.state import (
    MAX_NUMBERS,
    SandboxConfig,
    SandboxError,
    SandboxState,
    new_request_id,
)

api = Blueprint("genagent_api", __name__, url_prefix="/generativeagent/v1")
control = Blueprint("sandbox_control", __name__, url_prefix="/sandbox")

_MESSAGES = {
    400: "Bad request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Request Entity Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal server error",
    503: "Service Unavailable",
}


def create_sandbox_app(state: SandboxState | None = None) -> Flask:
    """Build the sandbox Flask app around ``state`` (a fresh default one if omitted)."""
    app = Flask(__name__)
    app.extensions["genagent_sandbox"] = state or SandboxState(SandboxConfig())
    app.register_blueprint(api)
    app.register_blueprint(control)

    @app.errorhandler(SandboxError)
    def _sandbox_error(exc: SandboxError) -> Response:
        return error_response(exc.status, exc.message, exc.code)

    @app.errorhandler(404)
    def _not_found(_exc: Exception) -> Response:
        return error_response(404, "no such endpoint")

    @app.errorhandler(405)
    def _not_allowed(_exc: Exception) -> Response:
        return error_response(405, "method not allowed on this endpoint")

    @app.get("/healthz")
    def _healthz() -> Response:
        return _json({"status": "ok"})

    return app


def create_sandbox_app_from_env(env: Mapping[str, str] | None = None) -> Flask:
    """The sandbox app for servers like gunicorn, configured from the environment.

    ``gunicorn -k gthread --workers 1 'adapter.sandbox.app:create_sandbox_app_from_env()'``:
    ONE worker process, since the state lives in its memory. Reads SANDBOX_POOL_SIZE
    (default 100), SANDBOX_EXPIRE_SECONDS (default 60), and SANDBOX_API_ID /
    SANDBOX_API_SECRET (optional); ConfigError names every problem at once.
    """
    reader = EnvReader(env)
    max_pool = MAX_NUMBERS - SandboxConfig().first_number
    config = SandboxConfig(
        expire_seconds=reader.number("SANDBOX_EXPIRE_SECONDS", 60.0, minimum=0.001),
        pool_size=reader.integer("SANDBOX_POOL_SIZE", 100, minimum=1, maximum=max_pool),
        api_id=reader.text("SANDBOX_API_ID"),
        api_secret=reader.text("SANDBOX_API_SECRET"),
    )
    reader.check()
    return create_sandbox_app(SandboxState(config))


def sandbox_state() -> SandboxState:
    """The state of the app serving this request."""
    state: SandboxState = current_app.extensions["genagent_sandbox"]
    return state


def error_response(
    status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    """The documented error body: ``{"error": {"requestId", "code", "message"}}``."""
    body = {
        "error": {
            "requestId": new_request_id(),
            "code": code or f"{status}-01",
            "message": message or _MESSAGES.get(status, "Error"),
        }
    }
    response = _json(body, status)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _read_json(limit: int = MAX_BODY_BYTES) -> Any:
    if (request.content_length or 0) > limit:
        raise SandboxError(413, f"the body is larger than {limit} bytes")
    raw = request.get_data(cache=False)
    if len(raw) > limit:
        raise SandboxError(413, f"the body is larger than {limit} bytes")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise SandboxError(400, "the body is not valid JSON") from None


# --- the API -------------------------------------------------------------------------


def _check_auth(state: SandboxState) -> None:
    api_id = request.headers.get("asapp-api-id", "")
    secret = request.headers.get("asapp-api-secret", "")
    if not api_id or not secret:
        raise SandboxError(401, "missing asapp-api-id or asapp-api-secret header")
    cfg = state.config
    if cfg.api_id is not None and not hmac.compare_digest(api_id, cfg.api_id):
        raise SandboxError(401, "unknown API key id")
    if cfg.api_secret is not None and not hmac.compare_digest(secret, cfg.api_secret):
        raise SandboxError(401, "wrong API secret")


def _serve(operation: str, handler: Any) -> Response:
    """Run an API handler under auth and whatever faults are injected."""
    state = sandbox_state()
    _check_auth(state)
    fault = state.take_fault(operation)
    if fault.fail is not None:
        if fault.latency:
            time.sleep(fault.latency)
        headers = {}
        if fault.fail.retry_after is not None:
            headers["Retry-After"] = f"{fault.fail.retry_after:g}"
        return error_response(fault.fail.status, "", headers=headers)
    # Work first, then the latency: a slow answer to a request that did take effect
    # is the case a client must survive (its retry meets a 409).
    try:
        response = _json(handler(state))
    except SandboxError as exc:
        response = error_response(exc.status, exc.message, exc.code)
    if fault.latency:
        time.sleep(fault.latency)
    if fault.malformed and response.status_code < 400:
        return Response('{"id": "truncated', status=200, mimetype="application/json")
    return response


@api.post("/call-transfers")
def create_transfer() -> Response:
    """Create a call transfer (PHONE_NUMBER or SIP)."""
    return _serve("create", lambda state: state.create(_read_json()))


@api.get("/call-transfers/<path:transfer_id>")
def get_transfer(transfer_id: str) -> Response:
    """Read a call transfer."""
    return _serve("get", lambda state: state.get(transfer_id))


# --- control: GenerativeAgent's side and faults -----------------------------------------


@control.post("/calls")
def connect_call() -> Response:
    """A call reaches a transfer number: ``{"transferNumber": "+1..."}``."""
    body = _read_json()
    number = body.get("transferNumber") if isinstance(body, dict) else None
    if not isinstance(number, str) or not number:
        raise SandboxError(400, "transferNumber is required")
    return _json(sandbox_state().connect(number))


@control.post("/sip-calls")
def connect_sip_call() -> Response:
    """A SIP call reaches ASAPP's URI: ``{"headers": {"X-ASAPP-CallTransferId": id}}``."""
    body = _read_json()
    headers = body.get("headers") if isinstance(body, dict) else None
    return _json(sandbox_state().connect_sip(headers))


@control.post("/transfers/<path:transfer_id>/complete")
def complete_transfer(transfer_id: str) -> Response:
    """GenerativeAgent hangs up with an outputContext."""
    return _json(sandbox_state().complete(transfer_id, _read_json()))


@control.post("/transfers/<path:transfer_id>/caller-hangup")
def caller_hangup(transfer_id: str) -> Response:
    """The caller hangs up while talking to GenerativeAgent."""
    return _json(sandbox_state().caller_hangup(transfer_id))


@control.post("/transfers/<path:transfer_id>/expire")
def expire_transfer(transfer_id: str) -> Response:
    """Expire an ACTIVE transfer now."""
    return _json(sandbox_state().expire(transfer_id))


@control.get("/transfers")
def list_transfers() -> Response:
    """Every transfer, the free pool size and the faults."""
    return _json(sandbox_state().snapshot())


@control.get("/conversations/<path:conversation_id>")
def get_conversation(conversation_id: str) -> Response:
    """Every leg of one externalConversationId."""
    return _json(sandbox_state().conversation(conversation_id))


@control.route("/faults", methods=["GET", "POST", "DELETE"])
def faults() -> Response:
    """Show (GET), add (POST) or clear (DELETE) injected faults."""
    state = sandbox_state()
    if request.method == "POST":
        return _json(state.set_faults(_read_json()))
    if request.method == "DELETE":
        state.clear_faults()
    return _json(state.faults.to_json())


@control.post("/reset")
def reset() -> Response:
    """Forget everything: transfers, conversations, faults."""
    sandbox_state().reset()
    return _json({"status": "reset"})
