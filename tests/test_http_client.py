"""The daemon's httpx clients over aiohttp (daemon.channels.http_client), against loopback servers
that misbehave the ways a provider or the network can: every failure is transient and says what
happened (a hang-up is not called a timeout, a refused connection says refused), for the Bot API
and for SMS alike."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from daemon.channels.sms import SmsChannel
from daemon.channels.telegram import TelegramChannel
from daemon.config import SmsConfig, TelegramConfig
from daemon.core.channel import OutgoingMessage
from daemon.core.errors import TransientError
from daemon.core.models import Recipient

REPO = Path(__file__).resolve().parent.parent
TOKEN = "123456:TEST-TOKEN-secret-part-0123456789"
SID = "AC" + "0123456789abcdef" * 2
PHONE = "+15558675310"

Send = Callable[[str, float], Awaitable[object]]
"""Send one message to a provider at this base URL with this timeout (seconds)."""
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def message() -> OutgoingMessage:
    recipient = Recipient(id=1, name="Ops", telegram_chat_id=4242, phone=PHONE)
    return OutgoingMessage(notification_id=7, recipient=recipient, text="disk full on db-1")


@pytest.fixture(params=["telegram", "sms"])
async def send(request: pytest.FixtureRequest) -> AsyncIterator[Send]:
    opened: list[TelegramChannel | SmsChannel] = []

    async def send_one(base: str, timeout: float) -> object:
        channel: TelegramChannel | SmsChannel
        if request.param == "telegram":
            channel = TelegramChannel(TelegramConfig(enabled=True, token=SecretStr(TOKEN), api_base=base,
                                                     timeout=timeout))
        else:
            channel = SmsChannel(SmsConfig(enabled=True, provider="twilio", base_url=base, account_sid=SID,
                                           auth_token="sms-auth-token-5f1e2d", sender="+15005550006",
                                           timeout=timeout))
        opened.append(channel)
        return await channel.send(message())

    yield send_one
    for channel in opened:
        await channel.close()


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """A TCP server on loopback answering each connection with ``handler`` (answers no HTTP server gives)."""
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> str:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                await reader.readuntil(b"\r\n\r\n")  # the request head; its small body may follow
                await handler(reader, writer)
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


def nothing_listening() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


async def failure(sending: Awaitable[object]) -> str:
    """The text of the TransientError ``sending`` raises (any other outcome fails the test)."""
    with pytest.raises(TransientError) as caught:
        await sending
    text = str(caught.value)
    assert TOKEN not in text and "sms-auth-token" not in text, text
    return text


async def test_an_answer_slower_than_the_timeout_is_transient_and_says_timed_out(
    send: Send, raw_server: Callable[[Handler], Awaitable[str]]
) -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes

    began = time.monotonic()
    assert "timed out" in await failure(send(await raw_server(never_answer), 0.3))
    assert 0.3 <= time.monotonic() - began < 3  # the timeout, not some library default


async def test_a_connection_closed_mid_answer_is_transient_and_no_timeout(
    send: Send, raw_server: Callable[[Handler], Awaitable[str]]
) -> None:
    async def half_an_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"ok\": tr")
        await writer.drain()

    text = await failure(send(await raw_server(half_an_answer), 5.0))
    assert "RemoteProtocolError" in text and "time" not in text, text


async def test_a_hang_up_before_the_answer_is_transient_and_no_timeout(
    send: Send, raw_server: Callable[[Handler], Awaitable[str]]
) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pass

    text = await failure(send(await raw_server(hang_up), 5.0))
    assert "Server disconnected" in text and "time" not in text, text


async def test_a_reset_connection_is_transient_and_no_timeout(
    send: Send, raw_server: Callable[[Handler], Awaitable[str]]
) -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
        writer.transport.abort()

    text = await failure(send(await raw_server(reset), 5.0))
    assert "time" not in text, text


async def test_an_answer_that_is_not_http_is_transient(
    send: Send, raw_server: Callable[[Handler], Awaitable[str]]
) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()

    text = await failure(send(await raw_server(garbage), 5.0))
    assert "time" not in text, text


async def test_nothing_listening_is_transient_and_says_refused(send: Send) -> None:
    text = await failure(send(nothing_listening(), 5.0))
    assert "connection refused by 127.0.0.1:" in text, text


async def test_a_proxy_from_the_environment_is_used_as_with_httpx_own_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    heads: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append((await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")[0])
        body = b'{"ok": true, "result": {"message_id": 5}}'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    channel = TelegramChannel(TelegramConfig(enabled=True, token=SecretStr(TOKEN), api_base="http://api.telegram.invalid"))
    try:
        assert await channel.send(message()) == "5"
    finally:
        await channel.close()
        server.close()
        await server.wait_closed()
    assert heads == [f"POST http://api.telegram.invalid/bot{TOKEN}/sendMessage HTTP/1.1".encode()]


def test_requests_wait_for_preload_while_held_and_only_then_import_aiohttp() -> None:
    # a fresh process: nothing has imported aiohttp yet (pytest's own process has, long ago)
    code = """
import asyncio, sys
from daemon.channels import http_client

async def main():
    http_client.hold()
    loading = asyncio.ensure_future(http_client.transport_module())
    await asyncio.sleep(0.3)
    before = (loading.done(), "aiohttp" in sys.modules)
    http_client.preload()
    await asyncio.wait_for(loading, 30)
    print(before, "aiohttp" in sys.modules)

asyncio.run(main())
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                         check=True)
    assert out.stdout.strip() == "(False, False) True"


GATE = """
inside, go = threading.Event(), threading.Event()

class Gate:
    def find_spec(self, name, path=None, target=None):
        if name == "httpx_aiohttp":
            inside.set()
            go.wait(30)
        return None

sys.meta_path.insert(0, Gate())
"""
"""For a test process: the worker thread importing the transport module stops at its ``import
httpx_aiohttp`` (``inside`` is set) until ``go`` is; the module is half made in sys.modules meanwhile."""


def test_a_request_during_the_import_waits_for_the_whole_module() -> None:
    # the worker thread is held inside the transport module's import (at its `import httpx_aiohttp`),
    # where sys.modules already holds the half-made module: a request must wait, not take that
    code = """
import asyncio, sys, threading
import aiohttp  # so that the import below stops at httpx_aiohttp, inside the transport module
from daemon.channels import http_client

""" + GATE + """
async def request():
    module = await http_client.transport_module()
    return hasattr(module, "make_client")

async def main():
    http_client.preload()
    assert await asyncio.to_thread(inside.wait, 30)
    waiting = asyncio.ensure_future(request())
    await asyncio.sleep(0.3)
    done_early = waiting.done()
    go.set()
    print(done_early, await asyncio.wait_for(waiting, 30))

asyncio.run(main())
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                         check=True)
    assert out.stdout.strip() == "False True"


def test_a_paced_send_takes_its_turn_only_once_the_client_is_there() -> None:
    # were the turn taken first, every send paced while aiohttp loads would leave at once when it is
    # loaded (Telegram's flood control answered 429 to such a bunch in tests/test_cluster_limits.py)
    code = """
import asyncio, sys, threading
import aiohttp
from pydantic import SecretStr
from daemon.channels import http_client
from daemon.channels.telegram import TelegramChannel
from daemon.config import TelegramConfig
from daemon.core.models import Recipient

""" + GATE + """
async def main():
    channel = TelegramChannel(TelegramConfig(enabled=True, token=SecretStr("1:x"), api_base="http://127.0.0.1:9"))
    http_client.preload()  # as the daemon at READY
    turn = asyncio.ensure_future(channel.wait_turn(Recipient(id=1, name="a", telegram_chat_id=5)))
    assert await asyncio.to_thread(inside.wait, 30)
    await asyncio.sleep(0.3)
    done_early = turn.done()
    go.set()
    await asyncio.wait_for(turn, 30)
    await channel.close()
    print(done_early)

asyncio.run(main())
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                         check=True)
    assert out.stdout.strip() == "False"


def test_the_adapters_and_their_client_factory_import_no_aiohttp() -> None:
    code = ("import sys, daemon.runtime.app, daemon.channels.botapi, daemon.channels.sms,"
            " daemon.channels.http_client, daemon.cli.doctor;"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'aiohttp', 'httpx_aiohttp'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_aiohttp_errors_become_the_httpx_errors_httpx_itself_raises() -> None:
    import aiohttp
    import httpx

    from daemon.channels.http_transport import translate

    cases: list[tuple[BaseException, type[httpx.TransportError]]] = [
        (aiohttp.ConnectionTimeoutError("Connection timeout to host http://x/"), httpx.ConnectTimeout),
        (aiohttp.SocketTimeoutError("Timeout on reading data from socket"), httpx.ReadTimeout),
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError),
        (aiohttp.ClientPayloadError("Response payload is not completed"), httpx.RemoteProtocolError),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), httpx.ReadError),
    ]
    for aiohttp_error, httpx_error in cases:
        assert type(translate(aiohttp_error)) is httpx_error, aiohttp_error
    assert translate(ValueError("not aiohttp's")) is None
