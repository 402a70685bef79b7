"""The Twilio front end to end: the real app on a real socket, the sandbox, a SQLite store."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from twilio.request_validator import RequestValidator

from adapter.config import Secret
from adapter.demo.simulator import TwilioSimulator
from adapter.flow import CallRecord, FlowPolicy, Router
from adapter.flow.routing import default_router
from adapter.sandbox import SandboxServer
from adapter.serving import BackgroundServer
from adapter.store import CallStore, StoreOptions, open_store
from adapter.twilio.settings import Destination, TwilioSettings
from adapter.web import WebSettings, create_app
from tests.conftest import settings_for

AUTH_TOKEN = "twilio-test-token-0123456789"
AGENT = "+15550100"
RETURN_URL = "https://ivr.example.com/return?menu=main"


def web_settings(
    sandbox_url: str,
    store_url: str,
    flow: FlowPolicy | None = None,
    router: Router = default_router,
    **twilio: Any,
) -> WebSettings:
    """Fast-failing settings for tests; ``twilio`` overrides TwilioSettings fields."""
    values: dict[str, Any] = {
        "auth_token": Secret(AUTH_TOKEN),
        "agent_destination": Destination.parse(AGENT),
        "system_return_url": RETURN_URL,
        "proxy_hops": 1,
    }
    values.update(twilio)
    return WebSettings(
        genagent=settings_for(sandbox_url, deadline=1.5, attempt_timeout=0.5),
        twilio=TwilioSettings(**values),
        flow=flow or FlowPolicy(create_deadline=1.5, context_wait=1.0, poll_interval=0.1),
        store_url=store_url,
        router=router,
    )


@dataclass
class Stack:
    """A running adapter with its sandbox, store and simulator."""

    sandbox: SandboxServer
    web: BackgroundServer
    store: CallStore
    store_url: str
    sim: TwilioSimulator
    http: httpx.Client

    def faults(self, **spec: Any) -> None:
        self.http.post(f"{self.sandbox.url}/sandbox/faults", json=spec).raise_for_status()

    def transfers(self) -> list[dict[str, Any]]:
        return self.http.get(f"{self.sandbox.url}/sandbox/transfers").json()["transfers"]

    def record(self, call_sid: str) -> CallRecord:
        stored = self.store.get(call_sid)
        assert stored is not None, f"no record for {call_sid}"
        return CallRecord.from_json(stored.data)

    def post(
        self,
        path: str,
        params: dict[str, str] | list[tuple[str, str]],
        *,
        sign_url: str | None = None,
        signature: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """A webhook as Twilio sends it, signed for ``sign_url`` (default: the URL posted to)."""
        url = f"{self.web.url}{path}"
        form = _multidict(list(params.items()) if isinstance(params, dict) else params)
        if signature is None:
            signature = RequestValidator(AUTH_TOKEN).compute_signature(sign_url or url, form)
        all_headers = {"X-Twilio-Signature": signature, **(headers or {})}
        return self.http.post(url, data=form, headers=all_headers)


def call_params(call_sid: str, **extra: str) -> dict[str, str]:
    """The parameters of Twilio's voice webhook."""
    return {
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "From": "+15551230001",
        "To": "+15559870000",
        "ToCountry": "US",
        **extra,
    }


def twiml(response: httpx.Response) -> ET.Element:
    """The TwiML document of a webhook answer (asserting it is one)."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(response.content)
    assert root.tag == "Response"
    return root


class _multidict(dict[str, list[str]]):
    """What RequestValidator reads repeated keys from (``getlist``)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        super().__init__()
        for key, value in pairs:
            self.setdefault(key, []).append(value)

    def getlist(self, key: str) -> list[str]:
        return self[key]


def start_stack(
    sandbox: SandboxServer,
    tmp_path: Path,
    store_name: str = "calls.sqlite3",
    router: Router = default_router,
    *,
    store_url: str | None = None,
    store_options: StoreOptions | None = None,
    **twilio: Any,
) -> Stack:
    """Serve the app for ``sandbox`` with a SQLite store under ``tmp_path`` (or the store
    ``store_url`` names)."""
    store_url = store_url or f"sqlite:///{tmp_path / store_name}"
    store = open_store(store_url, store_options)
    settings = web_settings(sandbox.url, store_url, router=router, **twilio)
    web = BackgroundServer(create_app(settings, store=store)).start()
    http = httpx.Client(timeout=30)
    sim = TwilioSimulator(web.url, sandbox.url, AUTH_TOKEN, http=http)
    return Stack(sandbox, web, store, store_url, sim, http)


def stop_stack(stack: Stack) -> None:
    """Stop the app and release the store."""
    stack.web.stop()
    stack.http.close()
    stack.store.close()
