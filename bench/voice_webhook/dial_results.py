"""The dial-result path: GenerativeAgent hung up, the transfer is COMPLETED (AGENT).

Before each phase (not measured): ``TEMPLATES`` real calls go through the adapter's voice
webhook (a transfer each), GenerativeAgent answers and completes each on the sandbox with
an AGENT outputContext, and the adapter's store receives, for every webhook of the phase,
a copy of one template's record under a fresh CallSid: a call being dialed whose current
transfer is that template's COMPLETED one. Each signed dial-result webhook then does for
the adapter what it does in production (a store read, a GET of the transfer, the route,
one store write, a <Dial> of AGENT_DESTINATION) and for the floor a GET of the same
transfer, named in the ``transfer`` query parameter that the adapter ignores.
"""

from __future__ import annotations

import copy
from pathlib import Path
from urllib.parse import urlencode

import httpx
from twilio.request_validator import RequestValidator

from adapter.store import CallStore, StoreOptions, open_store
from bench.voice_webhook.processes import BenchError
from bench.voice_webhook.webhooks import AUTH_TOKEN, VOICE_PATH, voice_params

DIAL_RESULT_PATH = "/twilio/dial-result"
AGENT_MARKER_TEMPLATE = "<Number>{}</Number>"
TEMPLATES = 64
AGENT_OUTPUT = {
    "transferType": "AGENT",
    "currentTaskName": "billing",
    "transferVariables": {"reason": "dispute"},
    "referenceVariables": {"accountId": "42"},
}


def dial_result_params(call_sid: str, index: int) -> dict[str, str]:
    """The <Dial> action request Twilio posts when the dialed party hung up."""
    params = voice_params(call_sid, index)
    params.update(
        CallStatus="in-progress",
        DialCallStatus="completed",
        DialCallSid="CA" + f"{index:032x}"[-32:],
        DialCallDuration="42",
        DialBridged="true",
    )
    return params


def call_sid(tag: str, index: int) -> str:
    width = 32 - len(tag)
    if index >= 16**width:
        raise BenchError(f"request {index} does not fit in {width} hex digits")
    return f"CA{tag}{index:0{width}x}"


class DialResultPrep:
    """Templates on the sandbox and record copies in the adapter's store, per phase."""

    def __init__(
        self, http: httpx.Client, sandbox_url: str, store_url: str, options: StoreOptions
    ) -> None:
        self.http = http
        self.sandbox_url = sandbox_url
        self.store_url = store_url
        self.options = options

    def templates(self, adapter_url: str, tag: str) -> list[tuple[str, str]]:
        """Hand ``TEMPLATES`` calls off through the adapter, complete them (AGENT):
        their CallSids and transfer ids."""
        validator = RequestValidator(AUTH_TOKEN)
        url = adapter_url + VOICE_PATH
        made: list[tuple[str, str]] = []
        for index in range(TEMPLATES):
            sid = call_sid(f"{tag}f", index)
            params = voice_params(sid, index)
            headers = {"X-Twilio-Signature": validator.compute_signature(url, params)}
            answer = self.http.post(url, data=params, headers=headers)
            answer.raise_for_status()
            transfer_id = f"{sid}-1"
            number = self.http.get(
                f"{self.sandbox_url}/sandbox/transfers",
            ).json()
            found = {t["id"]: t for t in number["transfers"]}.get(transfer_id)
            if found is None or "<Number>" not in answer.text:
                raise BenchError(f"template call {index}: the adapter did not dial a transfer")
            transfer_number = found["phoneNumber"]["transferNumber"]
            connected = self.http.post(
                f"{self.sandbox_url}/sandbox/calls", json={"transferNumber": transfer_number}
            )
            connected.raise_for_status()
            self.http.post(
                f"{self.sandbox_url}/sandbox/transfers/{transfer_id}/complete", json=AGENT_OUTPUT
            ).raise_for_status()
            made.append((sid, transfer_id))
        return made

    def copy_records(self, templates: list[tuple[str, str]], sids: list[str]) -> None:
        """Write one dialing record per CallSid, copied from the templates in turn."""
        store: CallStore = open_store(self.store_url, self.options)
        try:
            originals = []
            for sid, _ in templates:
                stored = store.get(sid)
                if stored is None:
                    raise BenchError(f"template {sid}: no record in the adapter's store")
                originals.append(stored.data)
            for index, sid in enumerate(sids):
                data = copy.deepcopy(originals[index % len(originals)])
                data["callId"] = sid
                store.create(sid, data, active=True)
        finally:
            store.close()


def write_signed_dial_results(
    path: Path, base_url: str, sids: list[str], templates: list[tuple[str, str]]
) -> None:
    """One signed dial result per CallSid: "signature<TAB>path<TAB>form", the path with
    ``attempt=1`` and the template transfer that CallSid's record points at."""
    validator = RequestValidator(AUTH_TOKEN)
    with path.open("w", encoding="ascii") as out:
        for index, sid in enumerate(sids):
            transfer_id = templates[index % len(templates)][1]
            target = f"{DIAL_RESULT_PATH}?{urlencode({'attempt': 1, 'transfer': transfer_id})}"
            params = dial_result_params(sid, index)
            signature = validator.compute_signature(base_url + target, params)
            out.write(f"{signature}\t{target}\t{urlencode(params)}\n")
