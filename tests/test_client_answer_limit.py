"""Both clients against a real loopback server answering bodies of every size: an answer
past MAX_ANSWER_BYTES is a MalformedResponseError before it is all in memory, one just
under it is read; what goes out is the request body encoded once, uncompressed answers
asked for."""

from __future__ import annotations

import asyncio
import json
import socketserver
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from adapter.genagent import AsyncGenAgentClient, GenAgentClient
from adapter.genagent.errors import MalformedResponseError
from adapter.genagent.protocol import MAX_ANSWER_BYTES
from adapter.genagent.requests import PhoneNumberTransferRequest
from adapter.genagent.retry import RetryPolicy
from tests.conftest import settings_for
from tests.genagent_helpers import transfer_body

NO_RETRY = RetryPolicy(rate_limited=(), server_error=())


class _Answers(socketserver.ThreadingTCPServer):
    """Answers every request with ``body`` (chunked or with a length); keeps the heads."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, body: bytes, *, chunked: bool) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.body = body
        self.chunked = chunked
        self.requests: list[tuple[bytes, bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(socketserver.StreamRequestHandler):
    server: _Answers

    def handle(self) -> None:
        while head := self._read_head():
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            self.server.requests.append((head, self.rfile.read(length)))
            body = self.server.body
            try:
                if self.server.chunked:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    for start in range(0, len(body), 65536):
                        piece = body[start : start + 65536]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
                    self.wfile.write(body)
            except OSError:  # the client stopped reading: what the test expects
                return

    def _read_head(self) -> bytes:
        lines = []
        while (line := self.rfile.readline()) not in (b"\r\n", b""):
            lines.append(line)
        return b"".join(lines)


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[_Answers] = []

    def start(body: bytes, *, chunked: bool = False) -> _Answers:
        server = _Answers(body, chunked=chunked)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _answer_of(size: int) -> bytes:
    """A valid call transfer whose outputContext makes the body exactly ``size`` bytes."""
    body = transfer_body(status="COMPLETED", outputContext={"transferVariables": {"notes": ""}})
    bare = len(json.dumps(body).encode())
    body["outputContext"]["transferVariables"]["notes"] = "x" * (size - bare)
    data = json.dumps(body).encode()
    assert len(data) == size
    return data


def _get_sync(url: str) -> Any:
    with GenAgentClient(settings_for(url), policy=NO_RETRY) as client:
        return client.get_transfer("t-1")


def _get_async(url: str) -> Any:
    async def scenario() -> Any:
        async with AsyncGenAgentClient(settings_for(url), policy=NO_RETRY) as client:
            return await client.get_transfer("t-1")

    return asyncio.run(scenario())


CLIENTS = [pytest.param(_get_sync, id="sync"), pytest.param(_get_async, id="async")]


@pytest.mark.parametrize("get", CLIENTS)
@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_an_answer_past_the_limit_is_malformed(serve: Any, get: Any, chunked: bool) -> None:
    server = serve(_answer_of(MAX_ANSWER_BYTES + 1), chunked=chunked)
    with pytest.raises(MalformedResponseError, match="longer than"):
        get(server.url)


@pytest.mark.parametrize("get", CLIENTS)
@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_an_answer_at_the_limit_is_read(serve: Any, get: Any, chunked: bool) -> None:
    server = serve(_answer_of(MAX_ANSWER_BYTES), chunked=chunked)
    transfer = get(server.url)
    assert transfer.output_context is not None
    assert len(transfer.output_context.transfer_variables["notes"]) > MAX_ANSWER_BYTES - 1000


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_the_create_body_goes_out_as_encoded_once(serve: Any, sync: bool) -> None:
    server = serve(json.dumps(transfer_body()).encode())
    request = PhoneNumberTransferRequest(
        id="t-1",
        external_conversation_id="conv-\u00e9",
        input_variables={"name": "Zo\u00eb", "quote": 'say "hi"'},
    )
    settings = settings_for(server.url)
    if sync:
        with GenAgentClient(settings, policy=NO_RETRY) as client:
            client.create_transfer(request)
    else:

        async def scenario() -> None:
            async with AsyncGenAgentClient(settings, policy=NO_RETRY) as client:
                await client.create_transfer(request)

        asyncio.run(scenario())
    [(head, sent)] = server.requests
    assert sent == request.encoded()
    assert json.loads(sent) == request.to_json()
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])
    }
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"accept-encoding"] == b"identity"
    assert headers[b"content-length"] == str(len(sent)).encode()
