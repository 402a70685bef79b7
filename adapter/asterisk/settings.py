"""Settings of the Asterisk worker, read once from the environment."""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field

from adapter.config import EnvReader, GenAgentSettings, Secret
from adapter.flow import FlowPolicy, Router
from adapter.flow.routing import default_router, read_router
from adapter.genagent.countries import ISO_3166_ALPHA2
from adapter.store import DEFAULT_STORE_URL, StoreOptions, read_store_url

# The secret asterisk_conf/manager_genagent.conf ships with: never a real one.
PLACEHOLDER_SECRET = "CHANGE-ME-to-a-long-random-secret"  # noqa: S105
PLAIN_PORT, TLS_PORT = 5038, 5039


@dataclass(frozen=True, slots=True)
class AmiSettings:
    """How to reach and use the Asterisk Manager Interface."""

    host: str
    username: str
    secret: Secret
    port: int = PLAIN_PORT
    action_timeout: float = 5.0
    heartbeat: float = 10.0
    reconnect_max: float = 30.0
    tls: bool = False
    tls_ca_file: str | None = None  # None: the system's CAs
    tls_verify: bool = True  # the certificate chain and the host name

    @classmethod
    def read(cls, env: EnvReader) -> AmiSettings:
        """Read the AMI_* variables; problems are collected in ``env``."""
        secret = env.secret("AMI_SECRET", "that user's secret")
        if secret.reveal() == PLACEHOLDER_SECRET:
            env.problems.append(
                "AMI_SECRET is the placeholder shipped in asterisk_conf/manager_genagent.conf: "
                "set a long random secret there (in manager.conf) and here"
            )
        tls = env.boolean("AMI_TLS", False)
        ca_file = env.text("AMI_TLS_CA_FILE")
        if ca_file is not None:
            _check_ca_file(env, ca_file, tls)
        return cls(
            host=env.required("AMI_HOST", "the Asterisk host running the manager interface"),
            port=env.integer("AMI_PORT", TLS_PORT if tls else PLAIN_PORT, minimum=1, maximum=65535),
            username=env.required("AMI_USERNAME", "the manager.conf user of the worker"),
            secret=secret,
            action_timeout=env.number("AMI_ACTION_TIMEOUT", 5.0, minimum=0.5, maximum=60),
            heartbeat=env.number("AMI_HEARTBEAT", 10.0, minimum=1, maximum=300),
            reconnect_max=env.number("AMI_RECONNECT_MAX", 30.0, minimum=1, maximum=600),
            tls=tls,
            tls_ca_file=ca_file,
            tls_verify=env.boolean("AMI_TLS_VERIFY", True),
        )


def _check_ca_file(env: EnvReader, ca_file: str, tls: bool) -> None:
    if not tls:
        env.problems.append("AMI_TLS_CA_FILE is set but AMI_TLS is not true")
    elif not os.access(ca_file, os.R_OK):
        env.problems.append(f"AMI_TLS_CA_FILE {ca_file!r} is not a readable file")
    else:
        try:
            ssl.create_default_context(cafile=ca_file)
        except (ssl.SSLError, ValueError) as exc:
            env.problems.append(f"AMI_TLS_CA_FILE {ca_file!r} holds no usable certificate: {exc}")


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
