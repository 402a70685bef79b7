"""The effects the flow's rules ask their driver to carry out, and nothing else.

A rule is a generator: it yields one of these, and the driver sends back the result
(or throws the GenAgentError / StoreError it raised) at the point that asked.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from adapter.flow.model import CallRecord
from adapter.genagent import TransferRequest


@dataclass(frozen=True, slots=True)
class CreateTransfer:
    """Create a call transfer; the result is a CallTransfer."""

    request: TransferRequest
    deadline: float


@dataclass(frozen=True, slots=True)
class GetTransfer:
    """Read a call transfer; the result is a CallTransfer."""

    transfer_id: str
    deadline: float


@dataclass(frozen=True, slots=True)
class Pause:
    """Wait ``seconds``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Load:
    """Read a call's record; the result is a Stored or None.

    ``api_within``: the flow will most likely call the API next, under a deadline of
    at most this many seconds; a driver may reserve that request's rate-limit slot
    along with the read.
    """

    call_id: str
    api_within: float | None = None


@dataclass(frozen=True, slots=True)
class Save:
    """Write a call's record: create it (``version`` None) or update that version."""

    record: CallRecord
    version: int | None


@dataclass(frozen=True, slots=True)
class Purge:
    """Delete records not written for ``older_than`` seconds; the result is a count."""

    older_than: float


Effect = CreateTransfer | GetTransfer | Pause | Load | Save | Purge
Flow = Generator[Effect, Any, Any]
