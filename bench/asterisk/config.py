"""Constants of the Asterisk worker benchmark: credentials, targets, thresholds."""

from __future__ import annotations

from bench.voice_webhook.processes import REPO

RESULTS_FILE = REPO / "bench" / "results" / "asterisk_worker.md"
RESULTS_FILE_SHARED = REPO / "bench" / "results" / "asterisk_workers_redis.md"
STORE_KEY_PREFIX = "bench:"
GA_API_ID = "bench-api-id"
GA_API_SECRET = "bench-api-secret"
AMI_USERNAME = "genagent-adapter"  # asterisk_conf/manager_genagent.conf, as the fake reads it
AMI_SECRET = "worker-secret"  # the secret the fake gives that user
# The client-side spike limiter must never engage: the sandbox has no limit, and a wait
# in the limiter would be counted as the worker's own latency. 10 000 is the most
# GA_API_MAX_RPS accepts; a wave needs at most N creates + N GETs in its window.
GA_API_MAX_RPS = 10_000
TARGET_P99_MS = 10.0
FLAT_GROWTH_KB = 5 * 1024
ROUTE_EXPECTED = "genagent-agent"
PROFILE_RATE = 200
WARMUP_WINDOW = 1.0
WARMUP_HOLD = 3.0
OTHERS_WARN_PCT = 10.0
STALL_MS = 5.0  # a wake-up this late in an idle process: the machine stalled
STALL_DRAIN = 0.05  # after a stall, seconds during which the backlog still delays calls
# Leaf frames of a thread that waits (py-spy cannot always tell): not counted as busy.
WAITING_FRAMES = frozenset(
    {
        "EpollSelector.select (selectors.py)",
        "_worker (concurrent/futures/thread.py)",
        "Condition.wait (threading.py)",
    }
)
# Inclusive shares in the profile summary: the adapter's frames (not its entry point) and
# where the libraries are entered.
ENTRY_FILES = ("(adapter/cli.py)", "(adapter/__main__.py)")
LIBRARY_ENTRIES = frozenset(
    {
        "AsyncClient.request (httpx/_client.py)",
        "AMIProtocol.send (panoramisk/ami_protocol.py)",
        "AMIProtocol.data_received (panoramisk/ami_protocol.py)",
        "to_thread (asyncio/threads.py)",
        "_SelectorSocketTransport.write (asyncio/selector_events.py)",
    }
)
