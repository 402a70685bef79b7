"""Prometheus metrics of the adapter, correct across gunicorn worker processes.

With PROMETHEUS_MULTIPROC_DIR set (gunicorn.conf.py sets it for the web app), every
process writes its samples there and ``exposition()`` adds them up; without it, each
process counts for itself (the AMI worker is one process). Labels are small fixed
sets: never a call id, a transfer id or a phone number.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

OUTCOMES = frozenset(
    {
        "agent-returned",
        "caller-hung-up",
        "no-answer",
        "busy",
        "failed",
        "expired",
        "api-error",
        "fallback",
    }
)
ROUTE_KINDS = frozenset({"agent", "system", "fallback", "hangup"})
FALLBACK_REASONS = frozenset(
    {
        "api-error",
        "no-transfer-reached",
        "context-not-ready",
        "no-output-context",
        "store-error",
        "internal-error",
        "caller-disconnect",
        "unknown-transfer-type",
        "unknown-call",
        "too-many-handoffs",
        "other",
    }
)
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_HANDOFF = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)

HANDOFFS = Counter("genagent_handoffs", "Callers handed to GenerativeAgent")
TRANSFERS_REQUESTED = Counter(
    "genagent_transfers_requested", "Call transfers requested (one per attempt)"
)
ATTEMPTS = Counter("genagent_attempts", "Finished attempts, by outcome", ["outcome"])
ROUTES = Counter(
    "genagent_routes", "Where callers went after GenerativeAgent, by route kind", ["kind"]
)
FALLBACKS = Counter("genagent_fallbacks", "Fallback routes, by reason class", ["reason"])
API_REQUESTS = Counter(
    "genagent_api_requests",
    "HTTP attempts to the GenerativeAgent API, by endpoint and status",
    ["endpoint", "status"],
)
API_LATENCY = Histogram(
    "genagent_api_request_seconds",
    "Time of one HTTP attempt to the GenerativeAgent API",
    ["endpoint"],
    buckets=_LATENCY,
)
WEBHOOK_LATENCY = Histogram(
    "genagent_webhook_seconds", "Time to answer a Twilio webhook", ["webhook"], buckets=_LATENCY
)
HANDOFF_ANSWER = Histogram(
    "genagent_handoff_answer_seconds",
    "From a hand-off to the adapter's first answer (a number to dial, or a route)",
    buckets=_HANDOFF,
)
AMI_EVENT_ACTION = Histogram(
    "genagent_ami_event_action_seconds",
    "From an AMI event to the action carrying out the decision (Redirect)",
    ["event"],
    buckets=_LATENCY,
)


def label(value: object, allowed: frozenset[str]) -> str:
    """``value`` if it is one of ``allowed``, else "other": labels stay a small set."""
    text = str(value)
    return text if text in allowed else "other"


def exposition() -> tuple[bytes, str]:
    """The metrics page and its content type, summed over processes when multiprocess."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
