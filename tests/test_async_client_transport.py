"""AsyncGenAgentClient over its production transport (aiohttp) against misbehaving servers
on real loopback sockets: whatever the connection does, the caller sees the client's own
ApiConnectionError / ApiTimeoutError, never an aiohttp or OS exception."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import httpx
import pytest
from httpx_aiohttp import AiohttpTransport

from adapter.genagent import AsyncGenAgentClient, GenAgentError
from adapter.genagent.errors import ApiConnectionError, ApiTimeoutError
from adapter.genagent.retry import RetryPolicy
from tests.conftest import settings_for
from tests.genagent_helpers import transfer_body

NO_RETRY = RetryPolicy(rate_limited=(), server_error=())
BODY = json.dumps(transfer_body()).encode()

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            await reader.readexactly(int(value))
    return head


async def _closes_mid_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(BODY)}\r\n\r\n".encode()
        + BODY[:10]
    )
    await writer.drain()
    writer.close()


async def _closes_before_answering(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    await _read_request(reader)
    writer.close()


async def _never_answers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    try:
        await reader.read()  # until the client gives up and closes
    finally:
        writer.close()


async def _answers_garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"this is not HTTP at all\r\n\r\n")
    await writer.drain()
    writer.close()


async def _answers_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        try:
            await _read_request(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            break
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(BODY)}\r\n\r\n".encode()
            + BODY
        )
        await writer.drain()
    writer.close()


class _Server:
    """A loopback server running ``handler`` on each connection; closing it closes them."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        try:
            await self._handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.close()

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()
        await asyncio.sleep(0)  # the handlers see their connections closed


async def _get_through(handler: Handler, **settings: Any) -> BaseException:
    """What get_transfer raises against a loopback server running ``handler``."""
    async with _Server(handler) as url:
        return await _get_from(url, **settings)


async def _get_from(url: str, **settings: Any) -> BaseException:
    async with AsyncGenAgentClient(settings_for(url, **settings), policy=NO_RETRY) as client:
        try:
            await client.get_transfer("t-1")
        except BaseException as exc:  # the test looks at what came out
            return exc
    raise AssertionError("the request succeeded")


def _run(coro: Awaitable[BaseException]) -> BaseException:
    async def main() -> BaseException:
        return await coro

    return asyncio.run(main())


def _not_aiohttp(exc: BaseException) -> None:
    assert isinstance(exc, GenAgentError), repr(exc)
    assert not isinstance(exc, aiohttp.ClientError | OSError | httpx.HTTPError)


def test_the_production_transport_is_aiohttp() -> None:
    async def scenario() -> None:
        client = AsyncGenAgentClient(settings_for("https://api.example.invalid"))
        transport = client._http._transport
        assert isinstance(transport, AiohttpTransport)
        await client.aclose()

    asyncio.run(scenario())


def test_tls_is_verified_as_httpx_would() -> None:
    async def scenario() -> None:
        async with AsyncGenAgentClient(settings_for("https://api.example.invalid")) as client:
            transport = client._http._transport
            assert isinstance(transport, AiohttpTransport)
            context = transport.ssl_context
            assert context.verify_mode is ssl.CERT_REQUIRED
            assert context.check_hostname

    asyncio.run(scenario())


def test_environment_proxies_go_over_aiohttp_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")

    async def scenario() -> None:
        async with AsyncGenAgentClient(settings_for("https://api.example.invalid")) as client:
            proxied = [t for t in client._http._mounts.values() if t is not None]
            assert proxied
            assert all(isinstance(t, AiohttpTransport) for t in proxied)
            assert all(t.ssl_context.verify_mode is ssl.CERT_REQUIRED for t in proxied)

    asyncio.run(scenario())


def test_a_connection_closed_mid_answer_is_a_connection_error() -> None:
    exc = _run(_get_through(_closes_mid_answer))
    _not_aiohttp(exc)
    assert isinstance(exc, ApiConnectionError)


def test_a_connection_closed_before_the_answer_is_a_connection_error() -> None:
    exc = _run(_get_through(_closes_before_answering))
    _not_aiohttp(exc)
    assert isinstance(exc, ApiConnectionError)
    assert "Timeout" not in str(exc)


def test_a_server_that_never_answers_is_a_timeout() -> None:
    exc = _run(_get_through(_never_answers, attempt_timeout=0.2, deadline=0.3))
    _not_aiohttp(exc)
    assert isinstance(exc, ApiTimeoutError)


def test_an_answer_that_is_not_http_is_a_connection_error() -> None:
    exc = _run(_get_through(_answers_garbage))
    _not_aiohttp(exc)
    assert isinstance(exc, ApiConnectionError)


def test_a_refused_port_is_a_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        exc = _run(_get_from(f"http://127.0.0.1:{port}", deadline=1.0))
    _not_aiohttp(exc)
    assert isinstance(exc, ApiConnectionError)


def test_aclose_closes_the_aiohttp_session() -> None:
    async def scenario() -> None:
        async with _Server(_answers_ok) as url:
            client = AsyncGenAgentClient(settings_for(url), policy=NO_RETRY)
            try:
                transfer = await client.get_transfer("t-1")
                assert transfer.id == "t-1"
                transport = client._http._transport
                assert isinstance(transport, AiohttpTransport)
                session = transport.client
                assert isinstance(session, aiohttp.ClientSession)
                assert not session.closed
            finally:
                await client.aclose()
            assert session.closed

    asyncio.run(scenario())


def test_the_error_of_an_aiohttp_failure_names_its_kind() -> None:
    from adapter.genagent.async_client import _async_transport_error

    disconnected = aiohttp.ServerDisconnectedError()
    mapped = httpx.ConnectTimeout("Server disconnected")
    mapped.__cause__ = disconnected
    assert isinstance(_async_transport_error(mapped, 1.0), ApiConnectionError)
    assert isinstance(_async_transport_error(disconnected, 1.0), ApiConnectionError)
    assert isinstance(_async_transport_error(aiohttp.ServerTimeoutError(), 1.0), ApiTimeoutError)
    assert isinstance(_async_transport_error(httpx.ReadTimeout("slow"), 1.0), ApiTimeoutError)
    assert isinstance(
        _async_transport_error(httpx.ConnectError("refused"), 1.0), ApiConnectionError
    )
