"""X-Twilio-Signature checks over the public URL Twilio called.

Behind a PaaS router the app sees its own internal URL; Twilio signed the public
one. The public URL is PUBLIC_BASE_URL when set, else the scheme and host the
router forwarded (werkzeug's ProxyFix applies X-Forwarded-Proto/Host), plus the
path and query exactly as sent. There is deliberately no switch to turn this off.
"""

from __future__ import annotations

from contextlib import suppress
from hmac import compare_digest

from flask import Request
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

from adapter.config import Secret


class SignatureChecker:
    """Validates one request's X-Twilio-Signature with the account's Auth Token."""

    def __init__(self, auth_token: Secret, public_base_url: str | None = None) -> None:
        self._validator = RequestValidator(auth_token.reveal())
        self._base = public_base_url.rstrip("/") if public_base_url else None

    def public_url(self, request: Request) -> str:
        """The URL Twilio requested, as it signed it."""
        environ = request.environ
        target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        if not target:
            query = request.query_string.decode("latin-1")
            target = request.path + (f"?{query}" if query else "")
        base = self._base or request.host_url.rstrip("/")
        return base + target

    def is_valid(self, request: Request) -> bool:
        """True if the signature matches the URL and the form (repeated keys included)."""
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature:
            return False
        algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
        url, form = self.public_url(request), request.form
        # The URL exactly as requested is what Twilio signs: one HMAC settles nearly every
        # request. validate() computes two (the URL with and without its port) and is
        # the answer for any other, an unsupported algorithm included.
        with suppress(ValueError):
            expected = self._validator.compute_signature(url, form, algorithm)
            if compare_digest(expected.encode(), signature.encode()):
                return True
        return bool(self._validator.validate(url, form, signature, algorithm))
