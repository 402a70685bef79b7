"""The call-state store interface: records keyed by the platform's call id, versioned.

Every write is a compare-and-set on ``version``, so two workers handling webhooks for the
same call cannot silently overwrite each other: the loser gets StaleWriteError, re-reads
and tries again.

StoreError
├── StaleWriteError: create of an existing id, or update of a missing id or stale version
└── StoreUnavailableError: the backend cannot be reached or opened
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self


class StoreError(Exception):
    """Base class of every error raised by a call store."""


class StaleWriteError(StoreError):
    """An optimistic-concurrency conflict: someone else wrote first, or nobody did."""


class StoreUnavailableError(StoreError):
    """The backend cannot be reached or opened."""


class WriteWouldWait(Exception):
    """A write tried under ``CallStore.without_waiting`` found the lock taken: nothing
    was written."""


@dataclass(frozen=True, slots=True)
class Stored:
    """One call's state as last written."""

    call_id: str
    data: dict[str, Any]
    version: int
    active: bool
    updated_at: float


class CallStore(ABC):
    """Call state shared by every worker process; values are small JSON objects."""

    #: get() never waits on a lock or the network (an event loop may call it inline).
    local_reads: bool = False
    #: create() and update() may be tried inline under without_waiting().
    inline_writes: bool = False

    def without_waiting(self) -> AbstractContextManager[None]:
        """Inside, a write that would wait for another writer raises WriteWouldWait
        instead, before writing anything (only where ``inline_writes``)."""
        raise NotImplementedError

    @abstractmethod
    def get(self, call_id: str) -> Stored | None:
        """The call's record, or None if there is none."""

    @abstractmethod
    def create(self, call_id: str, data: dict[str, Any], *, active: bool = True) -> Stored:
        """Store a new record at version 1; StaleWriteError if the id already exists."""

    @abstractmethod
    def update(
        self, call_id: str, data: dict[str, Any], *, expected_version: int, active: bool
    ) -> Stored:
        """Replace the record if it is still at ``expected_version``; else StaleWriteError."""

    @abstractmethod
    def active_ids(self, limit: int = 10_000) -> list[str]:
        """Ids of records flagged active, least recently written first."""

    @abstractmethod
    def recent(self, limit: int = 100, since: float | None = None) -> list[Stored]:
        """Records written at or after ``since`` (epoch seconds), most recently written
        first, at most ``limit`` of them: the call history."""

    @abstractmethod
    def purge(self, older_than_seconds: float) -> int:
        """Delete records not written for ``older_than_seconds``; returns how many."""

    @abstractmethod
    def close(self) -> None:
        """Release every connection; the store cannot be used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
