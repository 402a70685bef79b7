"""The ids the adapter puts into a returnURI, and reading them back.

ASAPP sends the returnURI back exactly as given (as a REFER's Refer-To, or as the
Request-URI of an INVITE), so a ``;transfer=<transfer id>`` URI parameter names the
hand-off attempt a return belongs to. Transfer ids are ``<call id>-<attempt>``.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

TRANSFER_PARAM = "transfer"
MAX_URI = 4096
_TRANSFER_ID = re.compile(r"([A-Za-z0-9._:-]{1,200})-([1-9][0-9]{0,4})", re.ASCII)


def return_uri_for(base: str, transfer_id: str) -> str:
    """``base`` with ``;transfer=<transfer_id>`` (replacing one already there), placed
    before any URI headers."""
    address, mark, headers = base.partition("?")
    kept = [
        part
        for part in address.split(";")[1:]
        if part.split("=", 1)[0].strip().lower() != TRANSFER_PARAM
    ]
    parts = [address.split(";")[0], *kept, f"{TRANSFER_PARAM}={quote(transfer_id, safe='')}"]
    return ";".join(parts) + mark + headers


def transfer_id_in(uri: str) -> str | None:
    """The transfer id in a returnURI (bare, in ``<>``, or a whole name-addr), or None
    when there is none or it is not a well-formed transfer id. Never raises."""
    if not isinstance(uri, str):
        return None
    text = uri[:MAX_URI]
    if "<" in text:
        text = text.split("<", 1)[1].split(">", 1)[0]
    address = text.split("?", 1)[0]
    for part in address.split(";")[1:]:
        name, _, value = part.partition("=")
        if name.strip().lower() == TRANSFER_PARAM:
            found = unquote(value.strip(), errors="replace")
            return found if split_transfer_id(found) is not None else None
    return None


def split_transfer_id(transfer_id: str) -> tuple[str, int] | None:
    """``<call id>-<attempt>`` as (call id, attempt), or None if malformed."""
    match = _TRANSFER_ID.fullmatch(transfer_id) if isinstance(transfer_id, str) else None
    if match is None:
        return None
    return match.group(1), int(match.group(2))
