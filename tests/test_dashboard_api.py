"""/calls, /calls/<id> and /dashboard: the token, the filters, the headers (Flask test client),
and the JSON over a real server after real calls."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask.testing import FlaskClient

from adapter.config import ConfigError, Secret
from adapter.sandbox import SandboxServer
from adapter.store import SQLiteCallStore
from adapter.web import WebSettings, create_app
from tests.history_records import record
from tests.history_stack import DASHBOARD_TOKEN, SECRETS, dashboard_stack, play_finished_calls
from tests.twilio_stack import web_settings

PAGES = (
    "/dashboard",
    "/dashboard/dashboard.js",
    "/dashboard/dashboard.css",
    "/dashboard/favicon.svg",
)
JSON_PATHS = ("/calls", "/calls/CA-a")


def basic(password: str, user: str = "ops") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


BEARER = {"Authorization": f"Bearer {DASHBOARD_TOKEN}"}


def make_client(token: str | None) -> Iterator[FlaskClient]:
    store = SQLiteCallStore(":memory:")
    store.create("CA-a", record("CA-a"), active=False)
    store.create("CA-b", record("CA-b", outcome="fallback"), active=False)
    store.create("CA-c", record("CA-c", outcome=None, phase="dialing"), active=True)
    settings = web_settings("http://127.0.0.1:9", "sqlite://:memory:")
    settings = dataclasses.replace(settings, dashboard_token=Secret(token) if token else None)
    with store:
        yield create_app(settings, store=store).test_client()


@pytest.fixture
def client() -> Iterator[FlaskClient]:
    yield from make_client(DASHBOARD_TOKEN)


@pytest.mark.parametrize("path", PAGES + JSON_PATHS)
def test_without_a_token_nothing_is_served(path: str) -> None:
    for unconfigured in make_client(None):
        answer = unconfigured.get(path, headers=basic(DASHBOARD_TOKEN))
        assert answer.status_code == 404


@pytest.mark.parametrize("path", PAGES + JSON_PATHS)
def test_the_token_is_asked_for_by_basic_auth(client: FlaskClient, path: str) -> None:
    for headers in ({}, basic("wrong-token-0123456789"), basic(DASHBOARD_TOKEN[:-1])):
        answer = client.get(path, headers=headers)
        assert answer.status_code == 401
        challenges = answer.headers.getlist("WWW-Authenticate")
        assert any(c.startswith("Basic realm=") for c in challenges)
        assert DASHBOARD_TOKEN not in answer.get_data(as_text=True)
    assert client.get(path, headers=basic(DASHBOARD_TOKEN, user="anyone")).status_code == 200


@pytest.mark.parametrize("path", JSON_PATHS)
def test_the_json_also_takes_a_bearer_token(client: FlaskClient, path: str) -> None:
    assert client.get(path, headers=BEARER).status_code == 200
    wrong = client.get(path, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert any(c.startswith("Bearer") for c in wrong.headers.getlist("WWW-Authenticate"))


def test_the_page_takes_no_bearer_token(client: FlaskClient) -> None:
    assert client.get("/dashboard", headers=BEARER).status_code == 401


@pytest.mark.parametrize("path", PAGES + JSON_PATHS + ("/calls/CA-none",))
def test_every_answer_has_a_strict_policy_and_is_never_cached(
    client: FlaskClient, path: str
) -> None:
    for headers in ({}, basic(DASHBOARD_TOKEN)):
        answer = client.get(path, headers=headers)
        policy = answer.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_the_page_loads_only_its_own_files(client: FlaskClient) -> None:
    page = client.get("/dashboard", headers=basic(DASHBOARD_TOKEN))
    html = page.get_data(as_text=True)
    assert page.mimetype == "text/html"
    assert 'src="/dashboard/dashboard.js"' in html
    assert 'href="/dashboard/dashboard.css"' in html
    assert "http://" not in html
    assert "https://" not in html
    assert "<style" not in html
    script = client.get("/dashboard/dashboard.js", headers=basic(DASHBOARD_TOKEN))
    assert script.mimetype == "text/javascript"
    assert "innerHTML" not in script.get_data(as_text=True)


def test_calls_lists_newest_first_with_filters(client: FlaskClient) -> None:
    listed = client.get("/calls", headers=BEARER).get_json()
    assert [c["callId"] for c in listed["calls"]] == ["CA-c", "CA-b", "CA-a"]
    assert listed["stats"]["inFlight"] == 1
    fallback = client.get("/calls?outcome=fallback", headers=BEARER).get_json()
    assert [c["callId"] for c in fallback["calls"]] == ["CA-b"]
    assert len(client.get("/calls?limit=2", headers=BEARER).get_json()["calls"]) == 2
    assert client.get("/calls?since=1h", headers=BEARER).get_json()["calls"]
    future = client.get("/calls?since=2200-01-01T00:00:00Z", headers=BEARER).get_json()
    assert future["calls"] == []


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=many", "limit=5000", "outcome=won", "since=yesterday"]
)
def test_a_bad_filter_is_a_400_that_says_why(client: FlaskClient, query: str) -> None:
    answer = client.get(f"/calls?{query}", headers=BEARER)
    assert answer.status_code == 400
    assert answer.get_json()["error"]


def test_one_call_is_its_masked_story_and_an_unknown_one_a_404(client: FlaskClient) -> None:
    story = client.get("/calls/CA-a", headers=BEARER).get_json()
    assert story["route"] == "agent"
    assert story["attempts"] == 2
    assert story["inputVariables"]["accountNumber"] == "***(4)"
    assert "3434" not in json.dumps(story)
    missing = client.get("/calls/CA-none", headers=BEARER)
    assert missing.status_code == 404
    assert missing.get_json() == {"error": "no such call"}


@pytest.mark.parametrize("token", ["short", "has a space in it 0123456789"])
def test_a_weak_token_stops_the_app_from_booting(token: str) -> None:
    env = {
        "GA_API_ID": "id",
        "GA_API_SECRET": "secret",
        "TWILIO_AUTH_TOKEN": "token",
        "AGENT_DESTINATION": "+15550100",
        "DASHBOARD_TOKEN": token,
    }
    with pytest.raises(ConfigError, match="DASHBOARD_TOKEN") as caught:
        WebSettings.from_env(env)
    assert token not in str(caught.value)


def test_calls_over_a_real_server_after_real_calls(sandbox: SandboxServer, tmp_path: Path) -> None:
    with dashboard_stack(sandbox, tmp_path) as stack:
        played = play_finished_calls(stack)
        http = httpx.Client(base_url=stack.web.url, timeout=10)
        assert http.get("/calls").status_code == 401
        listed: dict[str, Any] = http.get("/calls", headers=BEARER).json()
        by_id = {c["callId"]: c for c in listed["calls"]}
        assert (by_id[played.agent]["outcome"], by_id[played.agent]["route"]) == (
            "agent-returned",
            "agent",
        )
        assert by_id[played.system]["route"] == "system"
        assert (by_id[played.hangup]["outcome"], by_id[played.hangup]["route"]) == (
            "caller-hung-up",
            "hangup",
        )
        assert by_id[played.fallback]["outcome"] == "fallback"
        assert {c["front"] for c in listed["calls"]} == {"twilio"}
        assert listed["stats"]["fallbackRate"] == 0.25
        story = http.get(f"/calls/{played.fallback}", auth=("ops", DASHBOARD_TOKEN)).json()
        (attempt,) = story["handoffs"][0]["attempts"]
        assert (attempt["outcome"], attempt["httpStatus"]) == ("api-error", 503)
        everything = json.dumps(listed) + "".join(
            http.get(f"/calls/{call_id}", headers=BEARER).text for call_id in by_id
        )
        for secret in SECRETS:
            assert secret not in everything
        http.close()
