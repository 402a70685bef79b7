"""The sandbox's memory: call transfers, the number pool, conversations and faults.

Pure and thread-safe (one lock), with an injectable clock, so its rules can be
tested without a server. The Flask app in ``app.py`` is only its HTTP face.
"""

from __future__ import annotations

import heapq
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from adapter.genagent.errors import InvalidRequestError
from adapter.genagent.models import TransferStatus, TransferType
from adapter.genagent.requests import (
    PhoneNumberTransferRequest,
    SipTransferRequest,
    request_from_json,
)

WallClock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    """The API's timestamp format: ISO 8601, UTC, with a Z."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SandboxError(Exception):
    """An API error the sandbox answers with the documented error body."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or f"{status}-01"


# Numbers a pool can hold: +1999555 then up to six digits (13 digits, within E.164's 15).
MAX_NUMBERS = 1_000_000


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """How the sandbox behaves; every field has a demo-friendly default."""

    expire_seconds: float = 60.0
    pool_size: int = 100
    number_prefix: str = "+1999555"
    first_number: int = 100
    # When set, requests must carry exactly these credentials; otherwise any non-empty pair.
    api_id: str | None = None
    api_secret: str | None = None

    def __post_init__(self) -> None:
        if self.expire_seconds <= 0:
            raise ValueError("expire_seconds must be positive")
        if not 1 <= self.pool_size <= MAX_NUMBERS - self.first_number:
            raise ValueError(f"pool_size must be between 1 and {MAX_NUMBERS - self.first_number}")

    @property
    def number_digits(self) -> int:
        """Digits after the prefix: 4 (+1999555NNNN) unless the pool needs 6."""
        return 4 if self.first_number + self.pool_size <= 10_000 else 6


@dataclass(slots=True)
class Rule:
    """A fault for the next ``count`` API requests of one kind (``on``: any, create, get)."""

    count: int
    on: str = "any"
    status: int = 200
    retry_after: float | None = None
    delay_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        """The rule as the control API shows it."""
        body: dict[str, Any] = {"count": self.count, "on": self.on}
        if self.status != 200:
            body["status"] = self.status
        if self.retry_after is not None:
            body["retryAfter"] = self.retry_after
        if self.delay_ms:
            body["delayMs"] = self.delay_ms
        return body


@dataclass(slots=True)
class Faults:
    """Injected misbehaviour of the API side (control endpoints only change these)."""

    latency_ms: int = 0
    completion_lag_ms: int = 0
    fail: list[Rule] = field(default_factory=list)
    malformed: list[Rule] = field(default_factory=list)
    slow: list[Rule] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The faults as the control API shows them."""
        return {
            "latencyMs": self.latency_ms,
            "completionLagMs": self.completion_lag_ms,
            "fail": [rule.to_json() for rule in self.fail],
            "malformed": [rule.to_json() for rule in self.malformed],
            "slow": [rule.to_json() for rule in self.slow],
        }


@dataclass(frozen=True, slots=True)
class InjectedFault:
    """What to do to one API request instead of (or on top of) serving it."""

    latency: float = 0.0
    fail: Rule | None = None
    malformed: bool = False


@dataclass(slots=True)
class Transfer:
    """One call transfer as the sandbox keeps it."""

    request: PhoneNumberTransferRequest | SipTransferRequest
    status: TransferStatus
    created_at: datetime
    expire_at: datetime
    transfer_number: str | None = None
    call_received_at: datetime | None = None
    completed_at: datetime | None = None
    visible_at: datetime | None = None  # completion shows in GET from here (lag fault)
    output_context: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        return self.request.id

    def to_json(self, now: datetime) -> dict[str, Any]:
        """The resource as GET returns it at ``now``."""
        status = self.status
        completed = self.completed_at
        output = self.output_context
        if status is TransferStatus.COMPLETED and self.visible_at and now < self.visible_at:
            status, completed, output = TransferStatus.ONGOING, None, None
        request = self.request.to_json()
        body: dict[str, Any] = {
            "id": request.pop("id"),
            "externalConversationId": request.pop("externalConversationId"),
            "status": status.value,
            "type": request.pop("type"),
            "createdAt": iso(self.created_at),
            **request,
        }
        if self.call_received_at:
            body["callReceivedAt"] = iso(self.call_received_at)
        if completed:
            body["completedAt"] = iso(completed)
        if output is not None:
            body["outputContext"] = output
        if isinstance(self.request, PhoneNumberTransferRequest):
            body["phoneNumber"] = {
                "transferNumber": self.transfer_number,
                "country": self.request.country,
                "expireAt": iso(self.expire_at),
            }
        return body


@dataclass(slots=True)
class Conversation:
    """Every leg (transfer) of one externalConversationId."""

    legs: list[str] = field(default_factory=list)
    last_task_name: str | None = None


class SandboxState:
    """Call transfers and their rules; every public method is atomic."""

    def __init__(self, config: SandboxConfig | None = None, clock: WallClock = utc_now) -> None:
        self.config = config or SandboxConfig()
        self._clock = clock
        self._lock = threading.Lock()
        self.faults = Faults()
        self._reset_locked()

    def _reset_locked(self) -> None:
        cfg = self.config
        self._transfers: dict[str, Transfer] = {}
        self._conversations: dict[str, Conversation] = {}
        self._free: deque[str] = deque(
            f"{cfg.number_prefix}{n:0{cfg.number_digits}d}"
            for n in range(cfg.first_number, cfg.first_number + cfg.pool_size)
        )
        self._by_number: dict[str, str] = {}
        self._expiries: list[tuple[datetime, str]] = []

    def reset(self) -> None:
        """Forget every transfer and conversation, and clear the faults."""
        with self._lock:
            self._reset_locked()
            self.faults = Faults()

    # --- the API ---------------------------------------------------------------------

    def create(self, body: Any) -> dict[str, Any]:
        """POST /call-transfers: validate, reserve a number, start the expiry clock."""
        try:
            request = request_from_json(body)
        except InvalidRequestError as exc:
            raise SandboxError(422, str(exc)) from None
        with self._lock:
            now = self._sweep()
            if request.id in self._transfers:
                raise SandboxError(409, f"call transfer {request.id!r} already exists")
            number = None
            if isinstance(request, PhoneNumberTransferRequest):
                if not self._free:
                    raise SandboxError(503, "no transfer number is free; retry later", "503-02")
                number = self._free.popleft()
                self._by_number[number] = request.id
            expire_at = now + timedelta(seconds=self.config.expire_seconds)
            transfer = Transfer(
                request=request,
                status=TransferStatus.ACTIVE,
                created_at=now,
                expire_at=expire_at,
                transfer_number=number,
            )
            self._transfers[request.id] = transfer
            conversation = self._conversations.setdefault(
                request.external_conversation_id, Conversation()
            )
            conversation.legs.append(request.id)
            if request.task_name:
                conversation.last_task_name = request.task_name
            heapq.heappush(self._expiries, (expire_at, request.id))
            return transfer.to_json(now)

    def get(self, transfer_id: str) -> dict[str, Any]:
        """GET /call-transfers/{id}."""
        with self._lock:
            now = self._sweep()
            return self._find(transfer_id).to_json(now)

    # --- the GenerativeAgent side (control endpoints) ---------------------------------

    def connect(self, transfer_number: str) -> dict[str, Any]:
        """A call reaches ``transfer_number``: its ACTIVE transfer becomes ONGOING."""
        with self._lock:
            now = self._sweep()
            transfer_id = self._by_number.get(transfer_number)
            if transfer_id is None:
                raise SandboxError(404, "no active call transfer has this number", "404-02")
            transfer = self._transfers[transfer_id]
            transfer.status = TransferStatus.ONGOING
            transfer.call_received_at = now
            self._release(transfer)
            return transfer.to_json(now)

    def connect_sip(self, headers: Any) -> dict[str, Any]:
        """A SIP call reaches ASAPP's URI with ``{"X-ASAPP-CallTransferId": id}`` (any
        case): that ACTIVE SIP transfer becomes ONGOING."""
        if not isinstance(headers, Mapping):
            raise SandboxError(400, "headers must be an object")
        found = [v for k, v in headers.items() if str(k).lower() == "x-asapp-calltransferid"]
        if len(found) != 1 or not isinstance(found[0], str):
            raise SandboxError(400, "exactly one X-ASAPP-CallTransferId header is required")
        with self._lock:
            now = self._sweep()
            transfer = self._transfers.get(found[0])
            if transfer is None or not isinstance(transfer.request, SipTransferRequest):
                raise SandboxError(404, "no SIP call transfer has this id", "404-02")
            if transfer.status is not TransferStatus.ACTIVE:
                raise SandboxError(409, f"call transfer is {transfer.status.value}, not ACTIVE")
            transfer.status = TransferStatus.ONGOING
            transfer.call_received_at = now
            return transfer.to_json(now)

    def complete(self, transfer_id: str, output: Any) -> dict[str, Any]:
        """GenerativeAgent ends an ONGOING conversation with ``output`` (an outputContext)."""
        context = _output_context(output)
        with self._lock:
            now = self._sweep()
            transfer = self._ongoing(transfer_id)
            conversation = self._conversations[transfer.request.external_conversation_id]
            if not context.get("currentTaskName"):
                context["currentTaskName"] = conversation.last_task_name or ""
            conversation.last_task_name = context["currentTaskName"] or None
            transfer.status = TransferStatus.COMPLETED
            transfer.completed_at = now
            transfer.output_context = context
            lag = self.faults.completion_lag_ms
            transfer.visible_at = now + timedelta(milliseconds=lag) if lag else None
            return transfer.to_json(now)

    def caller_hangup(self, transfer_id: str) -> dict[str, Any]:
        """The caller hangs up mid-conversation: COMPLETED with CALLER_DISCONNECT."""
        return self.complete(transfer_id, {"transferType": TransferType.CALLER_DISCONNECT.value})

    def expire(self, transfer_id: str) -> dict[str, Any]:
        """Expire an ACTIVE transfer now, as if its expireAt had passed."""
        with self._lock:
            now = self._sweep()
            transfer = self._find(transfer_id)
            if transfer.status is not TransferStatus.ACTIVE:
                raise SandboxError(409, f"call transfer is {transfer.status.value}, not ACTIVE")
            self._expire(transfer)
            return transfer.to_json(now)

    def conversation(self, external_conversation_id: str) -> dict[str, Any]:
        """Every leg of a conversation: a second leg means GenerativeAgent resumed it."""
        with self._lock:
            now = self._sweep()
            conversation = self._conversations.get(external_conversation_id)
            if conversation is None:
                raise SandboxError(404, "no such conversation")
            return {
                "externalConversationId": external_conversation_id,
                "resumed": len(conversation.legs) > 1,
                "lastTaskName": conversation.last_task_name,
                "legs": [self._transfers[leg].to_json(now) for leg in conversation.legs],
            }

    def snapshot(self) -> dict[str, Any]:
        """All transfers, the free pool size and the faults."""
        with self._lock:
            now = self._sweep()
            return {
                "transfers": [t.to_json(now) for t in self._transfers.values()],
                "freeNumbers": len(self._free),
                "faults": self.faults.to_json(),
            }

    # --- faults ------------------------------------------------------------------------

    def set_faults(self, spec: Any) -> dict[str, Any]:
        """Merge a fault spec (see the README) into the current faults."""
        if not isinstance(spec, Mapping):
            raise SandboxError(400, "the fault spec must be a JSON object", "400-01")
        with self._lock:
            faults = self.faults
            if "latencyMs" in spec:
                faults.latency_ms = _non_negative_int(spec, "latencyMs")
            if "completionLagMs" in spec:
                faults.completion_lag_ms = _non_negative_int(spec, "completionLagMs")
            if spec.get("fail") is not None:
                faults.fail.append(_rule(spec["fail"], "fail", status=True))
            if spec.get("malformed") is not None:
                faults.malformed.append(_rule(spec["malformed"], "malformed"))
            if spec.get("slow") is not None:
                faults.slow.append(_rule(spec["slow"], "slow", delay=True))
            return faults.to_json()

    def clear_faults(self) -> None:
        """Back to a well-behaved API."""
        with self._lock:
            self.faults = Faults()

    def take_fault(self, operation: str) -> InjectedFault:
        """The fault to apply to one API request (``create`` or ``get``), consuming counts."""
        with self._lock:
            faults = self.faults
            slow = _consume(faults.slow, operation)
            delay_ms = faults.latency_ms + (slow.delay_ms if slow else 0)
            return InjectedFault(
                latency=delay_ms / 1000.0,
                fail=_consume(faults.fail, operation),
                malformed=_consume(faults.malformed, operation) is not None,
            )

    # --- internals (lock held) -----------------------------------------------------------

    def _sweep(self) -> datetime:
        now = self._clock()
        while self._expiries and self._expiries[0][0] <= now:
            _, transfer_id = heapq.heappop(self._expiries)
            transfer = self._transfers.get(transfer_id)
            if transfer is not None and transfer.status is TransferStatus.ACTIVE:
                self._expire(transfer)
        return now

    def _expire(self, transfer: Transfer) -> None:
        transfer.status = TransferStatus.EXPIRED
        self._release(transfer)

    def _release(self, transfer: Transfer) -> None:
        number = transfer.transfer_number
        if number is not None and self._by_number.get(number) == transfer.id:
            del self._by_number[number]
            self._free.append(number)  # to the back: the least recently used goes out first

    def _find(self, transfer_id: str) -> Transfer:
        transfer = self._transfers.get(transfer_id)
        if transfer is None:
            raise SandboxError(404, f"call transfer {transfer_id!r} not found")
        return transfer

    def _ongoing(self, transfer_id: str) -> Transfer:
        transfer = self._find(transfer_id)
        if transfer.status is not TransferStatus.ONGOING:
            raise SandboxError(409, f"call transfer is {transfer.status.value}, not ONGOING")
        return transfer


def new_request_id() -> str:
    """A request id for the error body."""
    return str(uuid.uuid4())


def _output_context(output: Any) -> dict[str, Any]:
    obj = _mapping(output, "outputContext")
    kind = str(obj.get("transferType", "")).strip().upper()
    if kind not in TransferType.__members__:
        raise SandboxError(400, "transferType must be AGENT, SYSTEM or CALLER_DISCONNECT")
    context: dict[str, Any] = {"transferType": kind}
    task = obj.get("currentTaskName")
    if task is not None and not isinstance(task, str):
        raise SandboxError(400, "currentTaskName must be a string")
    context["currentTaskName"] = task
    for key in ("referenceVariables", "transferVariables"):
        # Any JSON value, kept as given: the adapter must cope with whatever the API says.
        context[key] = dict(_mapping(obj.get(key) or {}, key))
    return context


def _mapping(value: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SandboxError(400, f"{name} must be a JSON object")
    return value


def _non_negative_int(spec: Mapping[str, Any], key: str) -> int:
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SandboxError(400, f"{key} must be a non-negative integer")
    return value


def _rule(value: Any, name: str, *, status: bool = False, delay: bool = False) -> Rule:
    spec = _mapping(value, name)
    rule = Rule(count=spec.get("count", 1), on=spec.get("on", "any"))
    if isinstance(rule.count, bool) or not isinstance(rule.count, int) or rule.count < 1:
        raise SandboxError(400, f"{name}.count must be a positive integer")
    if rule.on not in ("any", "create", "get"):
        raise SandboxError(400, f"{name}.on must be 'any', 'create' or 'get'")
    if status:
        rule.status = spec.get("status")  # type: ignore[assignment]  # checked next
        if not isinstance(rule.status, int) or not 400 <= rule.status <= 599:
            raise SandboxError(400, f"{name}.status must be an HTTP error status (4xx or 5xx)")
        retry_after = spec.get("retryAfter")
        if retry_after is not None and (
            isinstance(retry_after, bool)
            or not isinstance(retry_after, int | float)
            or retry_after < 0
        ):
            raise SandboxError(400, f"{name}.retryAfter must be a non-negative number")
        rule.retry_after = retry_after
    if delay:
        rule.delay_ms = _non_negative_int(spec, "delayMs") if "delayMs" in spec else 0
    return rule


def _consume(rules: list[Rule], operation: str) -> Rule | None:
    for rule in rules:
        if rule.on in ("any", operation):
            rule.count -= 1
            if rule.count <= 0:
                rules.remove(rule)
            return rule
    return None
