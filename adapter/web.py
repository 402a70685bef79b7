"""The Flask application factory: ``gunicorn 'adapter.web:create_app()'``.

Settings are read and checked once, here, at start-up: a worker with a missing or
malformed variable refuses to boot with one message naming every problem.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from flask import Flask, Response, jsonify
from werkzeug.middleware.proxy_fix import ProxyFix

from adapter.config import EnvReader, GenAgentSettings, Secret
from adapter.dashboard import read_dashboard_token, register_dashboard
from adapter.flow import FlowPolicy, Router, TransferFlow
from adapter.flow.routing import default_router, read_router
from adapter.genagent import GenAgentClient
from adapter.observe import endpoints
from adapter.observe.logging import configure_logging
from adapter.observe.settings import ObserveSettings
from adapter.store import (
    DEFAULT_STORE_URL,
    CallStore,
    StoreOptions,
    open_store,
    read_store_url,
)
from adapter.store.shared_limit import shared_limit_for
from adapter.twilio.settings import TwilioSettings
from adapter.twilio.views import MAX_BODY_BYTES, TwilioFront, twilio

log = logging.getLogger("adapter.web")


@dataclass(frozen=True, slots=True)
class WebSettings:
    """Everything the web app reads from the environment, in one typed object."""

    genagent: GenAgentSettings
    twilio: TwilioSettings
    flow: FlowPolicy
    store_url: str = field(default=DEFAULT_STORE_URL, repr=False)  # may hold a password
    store_options: StoreOptions = field(default_factory=StoreOptions)
    router: Router = default_router
    dashboard_token: Secret | None = None  # DASHBOARD_TOKEN: /dashboard and /calls
    observe: ObserveSettings = field(default_factory=ObserveSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebSettings:
        """Read and check every variable; ConfigError lists all problems at once."""
        reader = EnvReader(env)
        flow = FlowPolicy.read(reader)
        settings = cls(
            genagent=GenAgentSettings.read(reader),
            twilio=TwilioSettings.read(reader),
            flow=flow,
            store_url=read_store_url(reader),
            store_options=StoreOptions.read(reader, flow.retention_hours),
            router=read_router(reader),
            dashboard_token=read_dashboard_token(reader),
            observe=ObserveSettings.read(reader),
        )
        reader.check()
        return settings


def create_app(
    settings: WebSettings | None = None,
    *,
    store: CallStore | None = None,
    client: GenAgentClient | None = None,
) -> Flask:
    """Build the app: Twilio webhooks under /twilio, liveness at /healthz, readiness at
    /readyz, metrics at /metrics. Built from the environment (as gunicorn does), it also
    sets up logging unless gunicorn.conf.py already did."""
    if settings is None:
        configure_logging(only_if_unset=True)
        settings = WebSettings.from_env()
    app = Flask("adapter")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES  # 413 before any parsing
    hops = settings.twilio.proxy_hops
    if hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops
        )
    store = store or open_store(settings.store_url, settings.store_options)
    shared = None
    if client is None:
        shared = shared_limit_for(store, settings.genagent.max_requests_per_second)
        client = GenAgentClient(settings.genagent, shared_limit=shared)
    flow = TransferFlow(
        client,
        store,
        settings.flow,
        settings.router,
        get_reserving=shared.get_reserving if shared else None,
    )
    app.extensions["genagent_flow"] = flow
    app.extensions["genagent_twilio"] = TwilioFront(settings.twilio, flow)
    app.register_blueprint(twilio)
    register_dashboard(app, store, settings.dashboard_token)
    endpoints.install(app, settings.observe, store, client)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    return app
