#!/usr/bin/env python3
"""The webhooks' work counted, not timed: instructions (valgrind's callgrind) and system
calls (strace) per voice webhook or dial result, the floor against the adapter on SQLite
and Redis.

    python3 bench/webhook_work.py [--path voice|dial-result] [--calls 200] [--base 50]
                                  [--store sqlite|redis|both]

Throughput on a shared machine moves by more between two runs than many changes are
worth; these counts agree within about 1.5 % from run to run (the same code, the same
inputs), so a change's effect on the adapter's own work shows whatever the machine does.
They do not see what only load shows (threads waiting for the GIL or SQLite's lock,
caches gone cold): ``bench/twilio_webhook.py`` measures that. Needs valgrind and strace
(Debian's packages); talks only to 127.0.0.1. Exit status: 0 done, 2 could not be run.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` and ``adapter`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.webhook_work.main import main

if __name__ == "__main__":
    sys.exit(main())
