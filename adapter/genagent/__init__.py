"""The GenerativeAgent call-transfers API: typed models, errors, and httpx clients.

Knows nothing of phones: the Twilio and Asterisk fronts build on it.
"""

from adapter.genagent.async_client import AsyncGenAgentClient
from adapter.genagent.client import GenAgentClient
from adapter.genagent.errors import (
    ApiConnectionError,
    ApiError,
    ApiTimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    GenAgentError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitedError,
    ServerError,
    ServiceUnavailableError,
    TransportError,
    UnprocessableEntityError,
)
from adapter.genagent.models import (
    CallTransfer,
    InputContext,
    InviteAuthentication,
    OutputContext,
    PhoneNumber,
    ReturnTransferType,
    SipSettings,
    TransferKind,
    TransferStatus,
    TransferType,
)
from adapter.genagent.ratelimit import SharedWindow, StartSlot
from adapter.genagent.requests import (
    PhoneNumberTransferRequest,
    SipTransferRequest,
    TransferRequest,
)
from adapter.genagent.retry import Deadline, RetryPolicy

__all__ = [
    "ApiConnectionError",
    "ApiError",
    "ApiTimeoutError",
    "AsyncGenAgentClient",
    "AuthenticationError",
    "BadRequestError",
    "CallTransfer",
    "ConflictError",
    "Deadline",
    "GenAgentClient",
    "GenAgentError",
    "InputContext",
    "InvalidRequestError",
    "InviteAuthentication",
    "MalformedResponseError",
    "NotFoundError",
    "OutputContext",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PhoneNumber",
    "PhoneNumberTransferRequest",
    "RateLimitedError",
    "RetryPolicy",
    "ReturnTransferType",
    "ServerError",
    "ServiceUnavailableError",
    "SharedWindow",
    "SipSettings",
    "SipTransferRequest",
    "StartSlot",
    "TransferKind",
    "TransferRequest",
    "TransferStatus",
    "TransferType",
    "TransportError",
    "UnprocessableEntityError",
]
