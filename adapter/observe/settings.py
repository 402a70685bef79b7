"""Settings of what an operator sees: the metrics endpoint and the readiness check."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from adapter.config import EnvReader, Secret


@dataclass(frozen=True, slots=True)
class ObserveSettings:
    """METRICS_TOKEN, METRICS_PORT and READY_CHECK_INTERVAL."""

    metrics_token: Secret | None = None
    metrics_port: int | None = None
    ready_check_interval: float = 30.0

    @classmethod
    def read(cls, env: EnvReader) -> ObserveSettings:
        """Read the variables; problems are collected in ``env``."""
        token = env.text("METRICS_TOKEN")
        if token is not None and len(token) < 16:
            env.problems.append("METRICS_TOKEN must be at least 16 characters long")
        port = (
            env.integer("METRICS_PORT", 0, minimum=1, maximum=65535)
            if env.text("METRICS_PORT")
            else None
        )
        if port is not None and token is None:
            env.problems.append("METRICS_PORT is set but METRICS_TOKEN is not: set both")
        return cls(
            metrics_token=Secret(token) if token else None,
            metrics_port=port,
            ready_check_interval=env.number("READY_CHECK_INTERVAL", 30.0, minimum=1, maximum=3600),
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ObserveSettings:
        """Read and check, raising ConfigError on any problem."""
        reader = EnvReader(env)
        settings = cls.read(reader)
        reader.check()
        return settings
