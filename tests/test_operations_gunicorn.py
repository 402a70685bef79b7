"""Operating the web line: logs, /readyz, /metrics and `check`, under a real gunicorn."""

from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from adapter.demo.simulator import AgentLeg, CallScript, TwilioSimulator
from adapter.sandbox import SandboxServer
from tests.conftest import API_SECRET
from tests.gunicorn_rig import AGENT_NUMBER, METRICS_TOKEN, procfile_web, web_env
from tests.test_procfile import ROOT, procfile_command
from tests.twilio_stack import AUTH_TOKEN

WRONG_SECRET = "wrong-secret-not-this-one"
VARIABLE_VALUE = "acct-value-7781"
AGENT = {"transferType": "AGENT", "currentTaskName": "billing", "transferVariables": {"r": "x"}}
SYSTEM = {"transferType": "SYSTEM", "transferVariables": {"balance": "balance-value-55"}}
# Digits of every phone number these calls carry (caller, called, agent, transfer numbers).
_NUMBER = re.compile(r"\+?1?(555123|555987|999555|5550100)\d*")


Page = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Page:
    """A metrics page as {(sample name, sorted labels): value}."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(
    page: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return page.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(url: str) -> Page:
    response = httpx.get(
        f"{url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    return samples(response.text)


def run_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adapter", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_wrong_api_secret_shows_in_the_log_readyz_and_check(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    env = web_env(sandbox.url, tmp_path, GA_API_SECRET=WRONG_SECRET)
    with procfile_web(env, tmp_path) as web, httpx.Client(timeout=30) as http:
        sim = TwilioSimulator(web.url, sandbox.url, AUTH_TOKEN, http=http)
        result = sim.play(CallScript(query={"iv_account": VARIABLE_VALUE}))
        assert result.final_target == f"number {AGENT_NUMBER}"  # the fallback, never silence

        failure = web.wait_for_line(
            lambda line: line["level"] == "ERROR" and line.get("status") == "401"
        )
        assert failure["logger"] == "adapter.genagent"
        assert failure["request_id"]
        assert failure["request_id"] in failure["message"]
        routed = web.wait_for_line(lambda line: line.get("route") == "fallback")
        assert routed["level"] == "INFO"
        assert routed["call_id"] == result.call_sid
        assert routed["outcome"] == "fallback"
        assert routed["reason"]

        ready = http.get(f"{web.url}/readyz")
        assert ready.status_code == 503
        checks = ready.json()["checks"]
        assert checks["store"]["ok"] is True
        assert checks["genagent_api"] == {"ok": False, "detail": "credentials rejected (401)"}

        checked = run_check(env)
        assert checked.returncode == 1
        assert "FAIL  GenerativeAgent API: credentials rejected (401)" in checked.stdout
        assert "PASS  call store" in checked.stdout
        assert WRONG_SECRET not in checked.stdout + checked.stderr
    text = web.log_text()
    for secret in (WRONG_SECRET, AUTH_TOKEN, VARIABLE_VALUE):
        assert secret not in text
    assert not _NUMBER.search(text), _NUMBER.search(text)


def test_metrics_count_the_calls_played_across_both_workers(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    scripts = [
        *[CallScript(legs=(AgentLeg(output=AGENT),)) for _ in range(4)],
        *[CallScript(legs=(AgentLeg(output=SYSTEM),), query={"iv_a": VARIABLE_VALUE})] * 3,
        *[CallScript(legs=(AgentLeg(ending="caller-hangs-up"),)) for _ in range(2)],
        *[CallScript(legs=(AgentLeg(answer="no-answer"), AgentLeg(output=AGENT)))] * 3,
    ]
    env = web_env(sandbox.url, tmp_path)
    with procfile_web(env, tmp_path) as web, httpx.Client(timeout=30) as http:
        sim = TwilioSimulator(web.url, sandbox.url, AUTH_TOKEN, http=http)
        with ThreadPoolExecutor(max_workers=6) as pool:  # both workers take calls
            results = list(pool.map(sim.play, scripts))
        assert all(200 in r.statuses for r in results)

        assert httpx.get(f"{web.url}/metrics").status_code == 401
        wrong = {"Authorization": "Bearer not-the-token"}
        assert httpx.get(f"{web.url}/metrics", headers=wrong).status_code == 401
        pages = [scrape(web.url) for _ in range(4)]  # whichever worker answers
        assert all(page == pages[0] or _same_counts(page, pages[0]) for page in pages)
        page = pages[0]
        assert value(page, "genagent_handoffs_total") == 12
        assert value(page, "genagent_transfers_requested_total") == 15
        assert value(page, "genagent_routes_total", kind="agent") == 7
        assert value(page, "genagent_routes_total", kind="system") == 3
        assert value(page, "genagent_routes_total", kind="hangup") == 2
        assert value(page, "genagent_routes_total", kind="fallback") == 0
        assert value(page, "genagent_attempts_total", outcome="no-answer") == 3
        assert value(page, "genagent_attempts_total", outcome="agent-returned") == 10
        assert value(page, "genagent_attempts_total", outcome="caller-hung-up") == 2
        created = sum(
            v
            for (name, labels), v in page.items()
            if name == "genagent_api_requests_total"
            and ("endpoint", "POST call-transfers") in labels
        )
        assert created == 15
        assert value(page, "genagent_webhook_seconds_count", webhook="voice") == 12
        assert value(page, "genagent_handoff_answer_seconds_count") == 12

        metrics_text = httpx.get(
            f"{web.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        ).text
        ready = http.get(f"{web.url}/readyz")
        assert ready.status_code == 200, ready.text
    for call in results:
        assert call.call_sid not in metrics_text
    assert not _NUMBER.search(metrics_text)
    lines = web.json_lines()
    routed = [line for line in lines if line.get("route")]
    assert sorted(line["call_id"] for line in routed) == sorted(r.call_sid for r in results)
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys()
    booted = [line for line in lines if line["logger"] == "gunicorn.error"]
    assert any("Booting worker" in line["message"] for line in booted)  # gunicorn's own log
    text = web.log_text()
    for secret in (API_SECRET, AUTH_TOKEN, METRICS_TOKEN, VARIABLE_VALUE, "balance-value-55"):
        assert secret not in text
    assert not _NUMBER.search(text), _NUMBER.search(text)


def _same_counts(a: Page, b: Page) -> bool:
    """Equal but for histogram sums (float additions may differ in the last digit)."""
    keys = {k for k in a.keys() | b.keys() if not k[0].endswith("_sum")}
    return all(a.get(k) == b.get(k) for k in keys)


def test_metrics_are_not_served_without_a_token(sandbox: SandboxServer, tmp_path: Path) -> None:
    env = web_env(sandbox.url, tmp_path)
    del env["METRICS_TOKEN"]
    with procfile_web(env, tmp_path) as web:
        assert httpx.get(f"{web.url}/metrics").status_code == 404
        auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        assert httpx.get(f"{web.url}/metrics", headers=auth).status_code == 404


def test_a_bad_log_setting_stops_the_web_line_with_one_message(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    env = web_env(sandbox.url, tmp_path, LOG_LEVEL="LOUD")
    result = subprocess.run(
        procfile_command("web"),
        shell=True,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "LOG_LEVEL must be one of" in result.stderr
    assert "Traceback" not in result.stderr
