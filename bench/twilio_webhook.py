#!/usr/bin/env python3
"""Voice-webhook benchmark: the adapter against the least any correct handler must do.

    python3 bench/twilio_webhook.py [--store sqlite|redis] [--duration 15] [--rounds 3]

Starts, on 127.0.0.1 only, the GenerativeAgent sandbox (gunicorn, one gthread worker:
its state is in memory) and two apps under IDENTICAL gunicorn settings: the adapter
(``adapter.web:create_app()``, SQLite store in a fresh temporary file) and the minimal
handler of ``bench/baseline_app.py``. Both servers run for the whole run; wrk loads one
at a time with Twilio-signed voice webhooks, each with a fresh CallSid, pre-signed
into a file that ``bench/signed_requests.lua`` replays. After a warm-up of each, it
alternates baseline, adapter, baseline, adapter, ... (the sandbox reset before every
phase), prints a Markdown table with the ratios adapter/baseline and the verdict
against the targets (req/s >= 0.80, p99 <= 1.5), and writes it to
``bench/results/twilio_webhook.md``. It also reads the adapter's SQLite durability
settings back from its store file and, with strace, counts its fsyncs per webhook.

Needs wrk (``apt-get install wrk``); strace is optional. Every process it starts is in
its own process group and is stopped on exit, failure or Ctrl-C. Exit status: 0 the
targets are met, 1 they are not, 2 the run is invalid (errors, non-2xx, bad TwiML,
exhausted requests) or could not be set up.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` and ``adapter`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.voice_webhook.main import main

if __name__ == "__main__":
    sys.exit(main())
