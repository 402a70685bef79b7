"""DASHBOARD_TOKEN and the checks of what a request presents for it.

The browser presents the token by HTTP basic auth (any user name, the token as password);
a script may send ``Authorization: Bearer <token>`` to the JSON endpoints. Comparisons
take the same time whatever the guess.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import Request

from adapter.config import EnvReader, Secret

MIN_TOKEN_LENGTH = 16
REALM = "genagent-adapter dashboard"


def read_dashboard_token(reader: EnvReader) -> Secret | None:
    """DASHBOARD_TOKEN, or None when unset (the dashboard and /calls are then not served)."""
    value = reader.text("DASHBOARD_TOKEN")
    if value is None:
        return None
    if len(value) < MIN_TOKEN_LENGTH or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in value):
        reader.problems.append(
            f"DASHBOARD_TOKEN must be at least {MIN_TOKEN_LENGTH} printable characters"
            " without spaces (e.g. the output of `openssl rand -hex 24`)"
        )
    return Secret(value)


def presents_token(request: Request, token: Secret, *, bearer: bool) -> bool:
    """True when the request carries ``token`` by basic auth (or by bearer, if allowed)."""
    auth = request.authorization
    if auth is None:
        return False
    if auth.type == "basic":
        given = auth.password
    elif auth.type == "bearer" and bearer:
        given = auth.token
    else:
        return False
    # Digests of equal length: the comparison tells nothing, not even the token's length.
    return hmac.compare_digest(_digest(given or ""), _digest(token.reveal()))


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def challenges(*, bearer: bool) -> list[tuple[str, str]]:
    """The WWW-Authenticate headers of a 401."""
    headers = [("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')]
    if bearer:
        headers.append(("WWW-Authenticate", f'Bearer realm="{REALM}"'))
    return headers
