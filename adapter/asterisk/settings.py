"""Settings of the Asterisk worker, read once from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from adapter.config import EnvReader, GenAgentSettings, Secret
from adapter.flow import FlowPolicy, Router
from adapter.flow.routing import default_router, read_router
from adapter.genagent.countries import ISO_3166_ALPHA2
from adapter.store import DEFAULT_STORE_URL, StoreOptions, read_store_url


@dataclass(frozen=True, slots=True)
class AmiSettings:
    """How to reach and use the Asterisk Manager Interface."""

    host: str
    username: str
    secret: Secret
    port: int = 5038
    action_timeout: float = 5.0
    heartbeat: float = 10.0
    reconnect_max: float = 30.0

    @classmethod
    def read(cls, env: EnvReader) -> AmiSettings:
        """Read the AMI_* variables; problems are collected in ``env``."""
        return cls(
            host=env.required("AMI_HOST", "the Asterisk host running the manager interface"),
            port=env.integer("AMI_PORT", 5038, minimum=1, maximum=65535),
            username=env.required("AMI_USERNAME", "the manager.conf user of the worker"),
            secret=env.secret("AMI_SECRET", "that user's secret"),
            action_timeout=env.number("AMI_ACTION_TIMEOUT", 5.0, minimum=0.5, maximum=60),
            heartbeat=env.number("AMI_HEARTBEAT", 10.0, minimum=1, maximum=300),
            reconnect_max=env.number("AMI_RECONNECT_MAX", 30.0, minimum=1, maximum=600),
        )


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """Everything the AMI worker reads from the environment, in one typed object."""

    ami: AmiSettings
    genagent: GenAgentSettings
    flow: FlowPolicy
    country: str = "US"
    task_name: str | None = None
    store_url: str = field(default=DEFAULT_STORE_URL, repr=False)  # may hold a password
    store_options: StoreOptions = field(default_factory=StoreOptions)
    router: Router = default_router
    # Active-active workers (Redis store): how long a dead worker's calls stay leased.
    lease_ttl: float = 3.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        """Read and check every variable; ConfigError lists all problems at once."""
        reader = EnvReader(env)
        country = (reader.text("TRANSFER_COUNTRY", "US") or "US").upper()
        if country not in ISO_3166_ALPHA2:
            reader.problems.append(
                f"TRANSFER_COUNTRY must be an ISO 3166 alpha-2 code, got {country!r}"
            )
        flow = FlowPolicy.read(reader)
        settings = cls(
            ami=AmiSettings.read(reader),
            genagent=GenAgentSettings.read(reader),
            flow=flow,
            country=country,
            task_name=reader.text("GA_TASK_NAME"),
            store_url=read_store_url(reader),
            store_options=StoreOptions.read(reader, flow.retention_hours),
            router=read_router(reader),
            lease_ttl=reader.number("LEASE_TTL", 3.0, minimum=1, maximum=10),
        )
        reader.check()
        return settings
