"""Timing and retry policy of the hand-off, and the pure decisions built on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from adapter.config import EnvReader
from adapter.sip.settings import SipTransferSettings


@dataclass(frozen=True, slots=True)
class FlowPolicy:
    """How hard the flow tries before it falls back, and how long it lets things take."""

    max_attempts: int = 3
    dial_timeout: int = 20
    expiry_margin: float = 5.0
    min_dial_seconds: int = 5
    create_deadline: float = 4.0
    context_wait: float = 6.0  # after the agent hangs up, how long its context may lag
    poll_interval: float = 0.5
    # How long a dial result may wait for a lagging context before the caller is put on
    # hold audio and the front asks again (a webhook never holds a thread for longer).
    hold_after: float = 1.0
    max_handoffs: int = 20  # hand-offs of one call; past it, the fallback
    # All the API work one front event may do (a Twilio webhook times out at 15 s).
    event_budget: float = 12.0
    # Call records hold caller data: keep them no longer than this.
    retention_hours: float = 24.0
    purge_every: float = 300.0  # seconds between purges, per process
    # TRANSFER_MODE and where SIP hand-offs go (phone-number mode needs none of it).
    sip: SipTransferSettings = field(default_factory=SipTransferSettings)

    @classmethod
    def read(cls, env: EnvReader) -> FlowPolicy:
        """Read the TRANSFER_* / DIAL_* / CONTEXT_* / SIP_* variables; problems collect in
        ``env``."""
        return cls(
            max_attempts=env.integer("TRANSFER_MAX_ATTEMPTS", 3, minimum=1, maximum=10),
            dial_timeout=env.integer("DIAL_TIMEOUT", 20, minimum=5, maximum=50),
            create_deadline=env.number("TRANSFER_CREATE_DEADLINE", 4.0, minimum=0.5, maximum=10),
            context_wait=env.number("CONTEXT_WAIT_SECONDS", 6.0, minimum=0.0, maximum=10),
            poll_interval=env.number("CONTEXT_POLL_INTERVAL", 0.5, minimum=0.05, maximum=5),
            hold_after=env.number("CONTEXT_HOLD_AFTER", 1.0, minimum=0.0, maximum=3),
            max_handoffs=env.integer("HANDOFF_MAX_PER_CALL", 20, minimum=1, maximum=100),
            retention_hours=env.number("STORE_RETENTION_HOURS", 24.0, minimum=0.1),
            sip=SipTransferSettings.read(env),
        )

    def dial_timeout_until(self, expire_at: datetime | None, now: datetime) -> int | None:
        """Seconds of ringing that fit before the number expires; None: too late to dial."""
        if expire_at is None:
            return self.dial_timeout
        left = (expire_at - now).total_seconds() - self.expiry_margin
        if left < self.min_dial_seconds:
            return None
        return int(min(self.dial_timeout, left))
