"""The routing decision: from GenerativeAgent's outputContext to where the caller goes.

The default follows ``transferType``. A deployment can replace it with its own
function (``ROUTER=package.module:function``) that receives a RouteContext and
returns a Route; if that function fails, the default decision stands.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from adapter.config import EnvReader
from adapter.flow.model import Route, RouteKind
from adapter.genagent import CallTransfer, TransferType

log = logging.getLogger("adapter.flow")


@dataclass(frozen=True, slots=True)
class RouteContext:
    """What a router sees: the call, the fetched transfer (if any), and the default."""

    call_id: str
    conversation_id: str
    transfer: CallTransfer | None
    default: Route


Router = Callable[[RouteContext], Route]


def default_router(context: RouteContext) -> Route:
    """Keep the adapter's own decision."""
    return context.default


def route_for(transfer: CallTransfer) -> Route:
    """The default route for a COMPLETED transfer, by its outputContext."""
    output = transfer.output_context
    if output is None:
        return fallback("the completed transfer has no outputContext", transfer.id)
    if output.transfer_type == TransferType.AGENT:
        kind, reason = RouteKind.AGENT, "GenerativeAgent asked for a human agent"
    elif output.transfer_type == TransferType.SYSTEM:
        kind, reason = RouteKind.SYSTEM, "GenerativeAgent handed the call back"
    elif output.transfer_type == TransferType.CALLER_DISCONNECT:
        kind = RouteKind.FALLBACK
        reason = "GenerativeAgent reports a caller disconnect, but the caller is still here"
    else:
        kind, reason = RouteKind.FALLBACK, f"unknown transferType {output.transfer_type!r}"
    # The agent's variables travel on every route, the fallback included.
    return Route(
        kind,
        reason=reason,
        transfer_type=str(output.transfer_type) if output.transfer_type else None,
        current_task_name=output.current_task_name,
        transfer_variables=dict(output.transfer_variables),
        reference_variables=dict(output.reference_variables),
        transfer_id=transfer.id,
    )


def fallback(reason: str, transfer_id: str | None = None) -> Route:
    """Send the caller to the fallback destination (a human agent)."""
    return Route(RouteKind.FALLBACK, reason=reason, transfer_id=transfer_id)


def decide(router: Router, context: RouteContext) -> Route:
    """Ask ``router``; any failure or wrong answer keeps the default."""
    try:
        route = router(context)
    except Exception:
        log.exception("custom router failed for call %s; using the default route", context.call_id)
        return context.default
    if not isinstance(route, Route):
        log.error("custom router returned %s, not a Route; using the default", type(route).__name__)
        return context.default
    return route


def read_router(env: EnvReader) -> Router:
    """The ROUTER variable's function, or the default; problems are collected in ``env``."""
    path = env.text("ROUTER")
    if not path:
        return default_router
    try:
        return load_router(path)
    except ValueError as exc:
        env.problems.append(str(exc))
        return default_router


def load_router(path: str) -> Router:
    """Import ``package.module:function``; ValueError with a clear message if it cannot."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"ROUTER must look like 'package.module:function', got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"ROUTER: cannot import {module_name!r}: {exc}") from None
    router = getattr(module, attribute, None)
    if not callable(router):
        raise ValueError(f"ROUTER: {module_name!r} has no function {attribute!r}")
    return router  # type: ignore[no-any-return]
