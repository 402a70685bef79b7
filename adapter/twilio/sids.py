"""Twilio SIDs: the shape of a Call SID and an Account SID, and fresh ones for simulations.

A SID is two letters naming its kind and 32 hex digits. Checking the shape matters
because X-Twilio-Signature signs the form's keys and values concatenated: a captured
request can be re-split into other keys and values that sign the same, and a CallSid
that must be CA + 32 hex digits leaves no room for that.
"""

from __future__ import annotations

import re
import secrets

_CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")
_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")


def is_call_sid(value: str) -> bool:
    """True if ``value`` is CA followed by exactly 32 hex digits."""
    return _CALL_SID.fullmatch(value) is not None


def is_account_sid(value: str) -> bool:
    """True if ``value`` is AC followed by exactly 32 hex digits."""
    return _ACCOUNT_SID.fullmatch(value) is not None


def new_call_sid() -> str:
    """A random, well-formed Call SID (the simulator, the tests and the benchmarks use it)."""
    return "CA" + secrets.token_hex(16)
