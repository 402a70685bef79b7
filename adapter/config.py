"""Settings, read once from the environment at start-up into typed objects.

Every problem is reported at once, in one ConfigError naming each variable, so an
operator fixes a deployment in one go instead of one crash at a time.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit


class ConfigError(Exception):
    """One or more environment variables are missing or malformed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n  - " + "\n  - ".join(problems))


class Secret:
    """A string that never shows itself in a repr, a log line or an exception."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that must send it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class EnvReader:
    """Reads typed values from an environment mapping, collecting every problem."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = os.environ if env is None else env
        self.problems: list[str] = []

    def _raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None or not value.strip():
            return None
        return value.strip()

    def text(self, name: str, default: str | None = None) -> str | None:
        """An optional string."""
        value = self._raw(name)
        return default if value is None else value

    def required(self, name: str, hint: str) -> str:
        """A string that must be set; ``hint`` tells the operator what it is."""
        value = self._raw(name)
        if value is None:
            self.problems.append(f"{name} is not set: {hint}")
            return ""
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
            self.problems.append(f"{name} contains control characters")
        return value

    def secret(self, name: str, hint: str) -> Secret:
        """A required secret; never echoed in a problem message."""
        return Secret(self.required(name, hint))

    def http_url(self, name: str, default: str) -> str:
        """An absolute http(s) URL, without a trailing slash."""
        value = self._raw(name) or default
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            self.problems.append(
                f"{name} must be an absolute http:// or https:// URL, got {value[:80]!r}"
            )
        return value.rstrip("/")

    def number(
        self, name: str, default: float, *, minimum: float, maximum: float = math.inf
    ) -> float:
        """A float within [minimum, maximum]."""
        value = self._raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not minimum <= number <= maximum:
            bound = (
                f"between {minimum:g} and {maximum:g}"
                if maximum < math.inf
                else (f"at least {minimum:g}")
            )
            self.problems.append(f"{name} must be a number {bound}, got {value[:40]!r}")
            return default
        return number

    def integer(self, name: str, default: int, *, minimum: int, maximum: int) -> int:
        """An int within [minimum, maximum]."""
        value = self._raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            number = minimum - 1
        if not minimum <= number <= maximum:
            self.problems.append(
                f"{name} must be a whole number between {minimum} and {maximum}, got {value[:40]!r}"
            )
            return default
        return number

    def boolean(self, name: str, default: bool) -> bool:
        """true/false, yes/no, on/off or 1/0."""
        value = self._raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        self.problems.append(f"{name} must be true or false, got {value[:40]!r}")
        return default

    def check(self) -> None:
        """Raise ConfigError listing every problem found so far."""
        if self.problems:
            raise ConfigError(self.problems)


DEFAULT_API_BASE_URL = "https://api.sandbox.asapp.com"


@dataclass(frozen=True, slots=True)
class GenAgentSettings:
    """How to reach the GenerativeAgent API."""

    base_url: str
    api_id: str
    api_secret: Secret
    deadline: float = 4.0
    attempt_timeout: float = 2.0
    max_requests_per_second: int = 100

    @classmethod
    def read(cls, env: EnvReader) -> GenAgentSettings:
        """Read the GA_API_* variables; problems are collected in ``env``."""
        return cls(
            base_url=env.http_url("GA_API_BASE_URL", DEFAULT_API_BASE_URL),
            api_id=env.required("GA_API_ID", "the API key id from ASAPP"),
            api_secret=env.secret("GA_API_SECRET", "the API secret from ASAPP"),
            deadline=env.number("GA_API_DEADLINE", 4.0, minimum=0.1, maximum=60),
            attempt_timeout=env.number("GA_API_ATTEMPT_TIMEOUT", 2.0, minimum=0.05, maximum=60),
            max_requests_per_second=env.integer("GA_API_MAX_RPS", 100, minimum=1, maximum=10_000),
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GenAgentSettings:
        """Read and check the GA_API_* variables, raising ConfigError on any problem."""
        reader = EnvReader(env)
        settings = cls.read(reader)
        reader.check()
        return settings
