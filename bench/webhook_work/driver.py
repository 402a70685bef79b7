"""One process, ``count`` signed voice webhooks through the Flask test client.

    python -m bench.webhook_work.driver floor|adapter COUNT TAG

The app is built from the environment as gunicorn builds it (the floor:
``bench/baseline_app.py``; the adapter: ``adapter.web``), talks to the sandbox named by
GA_API_BASE_URL, and must answer every webhook with a ``<Dial>``. CallSids derive from
TAG, so runs with different tags never meet in the sandbox or the store.
"""

from __future__ import annotations

import hashlib
import sys
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from bench.voice_webhook.webhooks import AUTH_TOKEN, VOICE_PATH, voice_params

URL = "http://localhost" + VOICE_PATH  # what the test client's requests are signed for


def main(argv: list[str]) -> int:
    which, count, tag = argv[0], int(argv[1]), argv[2]
    if which == "floor":
        from bench.baseline_app import create_app
    else:
        from adapter.web import create_app
    client = create_app().test_client()
    validator = RequestValidator(AUTH_TOKEN)
    for index in range(count):
        sid = "CA" + hashlib.md5(f"{tag}-{index}".encode()).hexdigest()
        params = voice_params(sid, index)
        answer = client.post(
            VOICE_PATH,
            data=urlencode(params),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": validator.compute_signature(URL, params),
            },
        )
        if answer.status_code != 200 or b"<Dial" not in answer.data:
            print(f"webhook {index}: {answer.status_code} {answer.data[:200]!r}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
