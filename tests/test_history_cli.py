"""``genagent-adapter calls``: a real process reading the store file real calls were written to."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adapter.sandbox import SandboxServer
from tests.history_stack import SECRETS, PlayedCalls, dashboard_stack, play_finished_calls


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, PlayedCalls]:
    """Four finished calls in a store file; the app is gone when the CLI reads it."""
    tmp_path = tmp_path_factory.mktemp("history-cli")
    with SandboxServer().start() as sandbox, dashboard_stack(sandbox, tmp_path) as stack:
        calls = play_finished_calls(stack)
        store_url = stack.store_url
    return store_url, calls


def calls(store_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STORE_URL": store_url}
    return subprocess.run(
        [sys.executable, "-m", "adapter", "calls", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_calls_lists_one_line_per_call(played: tuple[str, PlayedCalls]) -> None:
    store_url, ids = played
    result = calls(store_url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["CALL", "ID", "FRONT"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    # The fallback was played last: newest first.
    assert lines[1].startswith(ids.fallback)
    assert rows[ids.agent][1] == "twilio"
    assert rows[ids.agent][4:6] == ["agent-returned", "agent"]
    assert rows[ids.system][4:6] == ["agent-returned", "system"]
    assert rows[ids.hangup][4:6] == ["caller-hung-up", "hangup"]
    assert rows[ids.fallback][4:7] == ["fallback", "fallback", "1"]
    for secret in SECRETS:
        assert secret not in result.stdout


def test_calls_filters_by_outcome_since_and_limit_as_json(played: tuple[str, PlayedCalls]) -> None:
    store_url, ids = played
    hung_up = json.loads(calls(store_url, "--outcome", "caller-hung-up", "--json").stdout)
    assert [c["callId"] for c in hung_up["calls"]] == [ids.hangup]
    assert (
        len(json.loads(calls(store_url, "--since", "1h", "--limit", "2", "--json").stdout)["calls"])
        == 2
    )
    future = calls(store_url, "--since", "2200-01-01T00:00:00Z", "--json")
    assert json.loads(future.stdout)["calls"] == []


def test_calls_show_prints_the_whole_timeline_masked(played: tuple[str, PlayedCalls]) -> None:
    store_url, ids = played
    agent = calls(store_url, "show", ids.agent)
    assert agent.returncode == 0, agent.stderr
    text = agent.stdout
    for expected in (
        f"call {ids.agent} (twilio)",
        "input variables accountNumber=***(4)",
        f"attempt #1 {ids.agent}-1",
        "route agent: GenerativeAgent asked for a human agent; transferType AGENT",
        "transfer requested: attempt 1 (answered in",
        "dial ended: attempt 1: agent-disconnected",
        "context fetched: status COMPLETED",
        "=> call outcome agent-returned; route agent",
    ):
        assert expected in text
    fallback = calls(store_url, "show", ids.fallback).stdout
    assert "api-error (ServiceUnavailableError: HTTP 503" in fallback
    for secret in SECRETS:
        assert secret not in text + fallback
    story = json.loads(calls(store_url, "show", ids.system, "--json").stdout)
    assert story["handoffs"][0]["route"]["transferVariables"] == {"balance": "***(6)"}


def test_an_unknown_call_is_a_clear_message_and_exit_1(played: tuple[str, PlayedCalls]) -> None:
    store_url, _ = played
    result = calls(store_url, "show", "CA-no-such-call")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "no call 'CA-no-such-call' in the store" in result.stderr


def test_a_bad_since_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = calls(f"sqlite:///{tmp_path / 'none.sqlite3'}", "--since", "yesterday")
    assert result.returncode == 2
    assert "use a span such as 15m, 2h, 1d" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_store_file_that_does_not_exist_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "typo.sqlite3"
    result = calls(f"sqlite:///{missing}")
    assert result.returncode == 2
    assert f"no call store at {missing}" in result.stderr
    assert not missing.exists()


def test_a_call_handed_over_twice_tells_both_hand_offs(tmp_path: Path) -> None:
    with SandboxServer().start() as sandbox, dashboard_stack(sandbox, tmp_path) as stack:
        from adapter.demo.simulator import AgentLeg, CallScript

        script = CallScript(
            legs=(
                AgentLeg(output={"transferType": "SYSTEM", "transferVariables": {"b": "1"}}),
                AgentLeg(answer="busy"),
                AgentLeg(output={"transferType": "AGENT"}),
            ),
            again=({"task": "billing"},),
        )
        call_id = stack.sim.play(script).call_sid
        store_url = stack.store_url
    shown = json.loads(calls(store_url, "show", call_id, "--json").stdout)
    handoffs = shown["handoffs"]
    assert [h["route"]["kind"] for h in handoffs] == ["system", "agent"]
    assert [len(h["attempts"]) for h in handoffs] == [1, 2]
    assert handoffs[1]["taskName"] == "billing"
    story = calls(store_url, "show", call_id).stdout
    assert story.count("hand-off") >= 2
    listed = calls(store_url, "--json")
    [row] = [c for c in json.loads(listed.stdout)["calls"] if c["callId"] == call_id]
    assert row["handoffs"] == 2
    assert row["attempts"] == 3
