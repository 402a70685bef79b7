"""One process, ``count`` signed webhooks through the Flask test client.

    python -m bench.webhook_work.driver voice|dial-result floor|adapter COUNT TAG SETUP

The app is built from the environment as gunicorn builds it (the floor:
``bench/baseline_app.py``; the adapter: ``adapter.web``), talks to the sandbox named by
GA_API_BASE_URL, and must answer every webhook with a ``<Dial>``. CallSids derive from
TAG, so runs with different tags never meet in the sandbox or the store.

The dial result first prepares what the load benchmark prepares (templates handed off
through the adapter and completed on the sandbox with an AGENT context, one record per
CallSid copied from them into STORE_URL), always for SETUP CallSids whatever COUNT is:
the preparation then costs every run of the same SETUP the same, and cancels out.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx
from flask import Flask
from twilio.request_validator import RequestValidator

from adapter.store import StoreOptions
from bench.voice_webhook.dial_results import DIAL_RESULT_PATH, DialResultPrep, dial_result_params
from bench.voice_webhook.webhooks import AUTH_TOKEN, VOICE_PATH, voice_params

BASE = "http://localhost"  # what the test client's requests are signed for
FORM = "application/x-www-form-urlencoded"


def sid_of(tag: str, index: int) -> str:
    return "CA" + hashlib.md5(f"{tag}-{index}".encode()).hexdigest()


def build(which: str) -> Flask:
    if which == "floor":
        from bench.baseline_app import create_app as floor_app

        return floor_app()
    from adapter.web import create_app

    return create_app()


def voice_requests(count: int, tag: str) -> list[tuple[str, dict[str, str]]]:
    return [(VOICE_PATH, voice_params(sid_of(tag, index), index)) for index in range(count)]


def dial_result_requests(
    count: int, tag: str, setup: int, adapter: Callable[[], Flask]
) -> list[tuple[str, dict[str, str]]]:
    """Templates and ``setup`` record copies in the store; ``count`` dial results."""
    app = adapter()
    store_options = StoreOptions(key_prefix=os.environ.get("STORE_KEY_PREFIX", "genagent:"))
    sandbox = os.environ["GA_API_BASE_URL"]
    mounts = {BASE: httpx.WSGITransport(app=app)}
    with httpx.Client(mounts=mounts, timeout=30) as http:
        prep = DialResultPrep(http, sandbox, os.environ["STORE_URL"], store_options)
        templates = prep.templates(BASE, tag)  # hex, as CallSids need
        sids = [sid_of(tag, index) for index in range(setup)]
        prep.copy_records(templates, sids)
    # Its checkpoint thread would go on working, a second at a time, in the floor's count.
    app.extensions["genagent_flow"].store.close()
    requests = []
    for index in range(count):
        transfer_id = templates[index % len(templates)][1]
        target = f"{DIAL_RESULT_PATH}?{urlencode({'attempt': 1, 'transfer': transfer_id})}"
        requests.append((target, dial_result_params(sids[index], index)))
    return requests


def main(argv: list[str]) -> int:
    path, which, count, tag, setup = argv[0], argv[1], int(argv[2]), argv[3], int(argv[4])
    requests: list[tuple[str, dict[str, Any]]]
    if path == "voice":
        requests = voice_requests(count, tag)
    else:
        from adapter.web import create_app

        requests = dial_result_requests(count, tag, setup, create_app)
    client = build(which).test_client()
    validator = RequestValidator(AUTH_TOKEN)
    for index, (target, params) in enumerate(requests):
        answer = client.post(
            target,
            data=urlencode(params),
            headers={
                "Content-Type": FORM,
                "X-Twilio-Signature": validator.compute_signature(BASE + target, params),
            },
        )
        if answer.status_code != 200 or b"<Dial" not in answer.data:
            print(f"webhook {index}: {answer.status_code} {answer.data[:200]!r}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
