"""The dashboard in a real headless Chromium: calls played through the app show up with their
outcomes, a call in flight moves to the finished calls by itself, a click shows a timeline,
and no caller data is on the page."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright import sync_api

from adapter.sandbox import SandboxServer
from tests.history_records import record
from tests.history_stack import (
    DASHBOARD_TOKEN,
    SECRETS,
    dashboard_stack,
    finish_call_in_flight,
    play_finished_calls,
    start_call_in_flight,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 20_000  # generous: the page polls every 2 s, the machine is shared
IN_FLIGHT_SID = "CA" + "f1" * 16

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="no Chromium here: install Debian's chromium (apt-get install -y chromium)",
    ),
]


@pytest.fixture
def browser() -> Iterator[sync_api.Browser]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


def row(page: sync_api.Page, table: str, call_id: str) -> sync_api.Locator:
    return page.locator(f"#{table} tbody tr[data-call-id='{call_id}']")


def test_the_dashboard_shows_calls_live_and_their_timelines(
    browser: sync_api.Browser, sandbox: SandboxServer, tmp_path: Path
) -> None:
    with dashboard_stack(sandbox, tmp_path) as stack:
        played = play_finished_calls(stack)
        in_flight = start_call_in_flight(stack, IN_FLIGHT_SID)

        context = browser.new_context(
            http_credentials={"username": "ops", "password": DASHBOARD_TOKEN}
        )
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(f"{stack.web.url}/dashboard")
        expect = sync_api.expect

        for call_id, outcome, route in (
            (played.agent, "agent-returned", "agent"),
            (played.system, "agent-returned", "system"),
            (played.hangup, "caller-hung-up", "hangup"),
            (played.fallback, "fallback", "fallback"),
        ):
            cells = row(page, "recent", call_id).locator("td")
            expect(cells.nth(3)).to_have_text(outcome, timeout=WAIT_MS)
            expect(cells.nth(4)).to_have_text(route)
        expect(row(page, "recent", played.hangup).locator("td").nth(5)).to_have_text(
            "caller hung up during the transfer"
        )
        expect(row(page, "inflight", IN_FLIGHT_SID)).to_have_count(1)
        expect(page.locator("#stat-inflight")).to_have_text("1")
        expect(page.locator("#stat-fallback")).to_have_text("25 %")

        # The call ends; the page shows it without a reload (the marker would be lost).
        page.evaluate("window.notReloaded = true")
        finish_call_in_flight(stack, in_flight)
        finished = row(page, "recent", IN_FLIGHT_SID).locator("td")
        expect(finished.nth(3)).to_have_text("agent-returned", timeout=WAIT_MS)
        expect(row(page, "inflight", IN_FLIGHT_SID)).to_have_count(0)
        assert page.evaluate("window.notReloaded") is True

        row(page, "recent", played.fallback).get_by_role("button").click()
        expect(page.locator("#detail-id")).to_have_text(played.fallback, timeout=WAIT_MS)
        timeline = page.locator("#timeline tbody")
        expect(timeline).to_contain_text("transfer request failed", timeout=WAIT_MS)
        expect(page.locator("#detail-attempts")).to_contain_text("api-error")
        expect(page.locator("#detail-attempts")).to_contain_text("HTTP 503")

        row(page, "recent", played.agent).get_by_role("button").click()
        expect(page.locator("#detail-id")).to_have_text(played.agent, timeout=WAIT_MS)
        expect(timeline).to_contain_text("context fetched", timeout=WAIT_MS)
        expect(page.locator("#detail-summary")).to_contain_text("route agent")

        text = page.locator("body").inner_text()
        for secret in SECRETS:
            assert secret not in text
        assert problems == []  # no script error, no Content-Security-Policy violation
        context.close()


def test_without_the_token_the_browser_gets_no_page(
    browser: sync_api.Browser, sandbox: SandboxServer, tmp_path: Path
) -> None:
    with dashboard_stack(sandbox, tmp_path) as stack:
        context = browser.new_context(
            http_credentials={"username": "ops", "password": "not-the-token-0123456789"}
        )
        page = context.new_page()
        response = page.goto(f"{stack.web.url}/dashboard")
        assert response is not None
        assert response.status == 401
        assert "genagent-adapter" not in page.locator("body").inner_text()
        context.close()


def test_values_from_the_store_are_shown_as_text_never_as_html(
    browser: sync_api.Browser, sandbox: SandboxServer, tmp_path: Path
) -> None:
    hostile = '<img src="/x" onerror="window.owned = 1"><b>bold</b>'
    call_id = "CA" + "ab" * 16
    data = record(call_id, outcome="fallback", phase="ended")
    data["route"].update(kind="fallback", reason=hostile)
    data["timeline"].append([data["createdAt"] + 70, "ended", hostile])
    with dashboard_stack(sandbox, tmp_path) as stack:
        stack.store.create(call_id, data, active=False)
        context = browser.new_context(
            http_credentials={"username": "ops", "password": DASHBOARD_TOKEN}
        )
        page = context.new_page()
        page.goto(f"{stack.web.url}/dashboard")
        reason = row(page, "recent", call_id).locator("td").nth(5)
        sync_api.expect(reason).to_have_text(hostile, timeout=WAIT_MS)
        row(page, "recent", call_id).get_by_role("button").click()
        sync_api.expect(page.locator("#timeline tbody")).to_contain_text(hostile, timeout=WAIT_MS)
        assert page.locator("main img, main b").count() == 0
        assert page.evaluate("window.owned") is None
        context.close()
