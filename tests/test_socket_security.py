"""Socket security: peer credentials (SO_PEERCRED) against allowed uids / gids, the connection
limit and the idle timeout. A misbehaving client cannot block others."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from daemon.api.peercred import Peer, is_allowed
from tests.conftest import RunningDaemon, make_config, start_daemon, stop_daemon

UID, GID = os.getuid(), os.getgid()
Start = Callable[..., Awaitable[RunningDaemon]]


def test_without_lists_every_peer_that_can_open_the_socket_is_allowed() -> None:
    assert is_allowed(Peer(1, 4242, 4242), (), ())


def test_a_listed_uid_is_allowed_and_others_are_not() -> None:
    assert is_allowed(Peer(1, 1000, 1000), (1000,), ())
    assert not is_allowed(Peer(1, 1001, 1001), (1000,), ())


def test_a_listed_primary_group_is_allowed() -> None:
    assert is_allowed(Peer(1, 987654, 555), (), (555,))  # no passwd entry: the primary group still counts
    assert not is_allowed(Peer(1, 987654, 556), (), (555,))


async def exchange(path: Path, payload: bytes, *, eof: bool = True) -> list[dict[str, Any]]:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(payload)
    await writer.drain()
    if eof:
        writer.write_eof()
    data = await asyncio.wait_for(reader.read(), timeout=5)
    writer.close()
    return [json.loads(line) for line in data.splitlines() if line.strip()]


@pytest.fixture
async def daemon_for(short_tmp: Path) -> AsyncIterator[Callable[..., Awaitable[RunningDaemon]]]:
    """Start a daemon with ``[daemon]`` overrides (each in its own state directory)."""
    started: list[RunningDaemon] = []

    async def start(**daemon_section: Any) -> RunningDaemon:
        state = short_tmp / f"d{len(started)}"
        running = await start_daemon(make_config(state, daemon={"state_dir": str(state), **daemon_section}))
        started.append(running)
        return running

    yield start
    for running in started:
        await stop_daemon(running)


PING = b'{"op": "ping", "id": 1}\n'


async def test_a_peer_whose_uid_is_not_listed_gets_an_error_and_is_disconnected(daemon_for: Start) -> None:
    running = await daemon_for(allowed_uids=[UID + 1])
    (reply,) = await exchange(running.config.daemon.socket_path, PING)
    assert reply["ok"] is False and reply["error"]["code"] == "forbidden"
    assert f"uid {UID} is not allowed" in reply["error"]["message"]
    assert await exchange(running.config.daemon.socket_path, PING) == [reply]  # and the daemon is still up


@pytest.mark.parametrize("section", [{"allowed_uids": [UID]}, {"allowed_uids": [UID + 1], "allowed_gids": [GID]}])
async def test_a_listed_uid_or_group_is_served(daemon_for: Start, section: dict[str, Any]) -> None:
    running = await daemon_for(**section)
    (reply,) = await exchange(running.config.daemon.socket_path, PING)
    assert reply["result"] == "pong"


async def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout(daemon_for: Start) -> None:
    running = await daemon_for(idle_timeout=0.3)
    reader, writer = await asyncio.open_unix_connection(str(running.config.daemon.socket_path))
    data = await asyncio.wait_for(reader.read(), timeout=3)  # EOF: the daemon hung up
    writer.close()
    assert json.loads(data)["error"]["code"] == "idle"
    assert await running.call("ping") == "pong"  # the test's own client was idle too: it reconnects


async def test_a_subscribe_stream_is_not_cut_by_the_idle_timeout(daemon_for: Start) -> None:
    running = await daemon_for(idle_timeout=0.2)
    reader, writer = await asyncio.open_unix_connection(str(running.config.daemon.socket_path))
    writer.write(b'{"op": "subscribe", "id": 1}\n')
    await writer.drain()
    assert json.loads(await reader.readline())["ok"] is True
    await asyncio.sleep(0.5)
    await running.call("recipient.add", name="Ann")
    event = json.loads(await asyncio.wait_for(reader.readline(), timeout=3))
    assert event["event"] == "recipient.added"
    writer.close()


async def test_connections_beyond_the_limit_are_told_busy_and_others_are_still_served(daemon_for: Start) -> None:
    running = await daemon_for(max_connections=2)  # the test's own client holds one
    path = str(running.config.daemon.socket_path)
    _hog_reader, hog_writer = await asyncio.open_unix_connection(path)
    await asyncio.sleep(0.05)
    (reply,) = await exchange(running.config.daemon.socket_path, PING)
    assert reply["error"]["code"] == "busy"
    hog_writer.close()
    await asyncio.sleep(0.05)
    (reply,) = await exchange(running.config.daemon.socket_path, PING)
    assert reply["result"] == "pong"


async def test_a_subscriber_that_keeps_writing_is_cut_off_after_1_mib_and_nothing_is_kept(daemon_for: Start) -> None:
    running = await daemon_for()
    reader, writer = await asyncio.open_unix_connection(str(running.config.daemon.socket_path))
    writer.write(b'{"op": "subscribe", "id": 1}\n')
    assert json.loads(await asyncio.wait_for(reader.readline(), 3))["ok"] is True
    chunk = b"x" * 65_536
    for _ in range(8):  # half a MiB: dropped, the stream goes on
        writer.write(chunk)
    await writer.drain()
    await running.call("recipient.add", name="Ann")
    assert json.loads(await asyncio.wait_for(reader.readline(), 3))["event"] == "recipient.added"

    sent = 8 * len(chunk)
    with pytest.raises(ConnectionError):  # the daemon hangs up once past 1 MiB
        async with asyncio.timeout(5):
            while sent < 64 * 1024 * 1024:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
            await asyncio.sleep(5)
    assert sent < 4 * 1024 * 1024
    writer.close()
    assert (await running.call("status"))["subscribers"] == 0


async def test_a_request_line_unfinished_after_the_idle_timeout_is_cut_off_while_a_steady_client_is_not(
    daemon_for: Start,
) -> None:
    running = await daemon_for(idle_timeout=0.3)
    path = str(running.config.daemon.socket_path)
    steady_reader, steady_writer = await asyncio.open_unix_connection(path)
    reader, writer = await asyncio.open_unix_connection(path)
    partial = b'{"op": "ping", "id": 1'
    for i in range(6):  # 0.6 s: the steady client's pings keep coming, the trickle never ends its line
        steady_writer.write(PING)
        assert json.loads(await asyncio.wait_for(steady_reader.readline(), 3))["result"] == "pong"
        if i < 3:  # a byte at 0, 0.1 and 0.2 s: the wait for its line still ends at 0.3 s
            writer.write(partial[i:i + 1])
        await asyncio.sleep(0.1)
    data = await asyncio.wait_for(reader.read(), timeout=3)  # EOF: the daemon hung up on the trickle
    assert json.loads(data)["error"]["code"] == "idle"
    steady_writer.write(PING)
    assert json.loads(await asyncio.wait_for(steady_reader.readline(), 3))["result"] == "pong"
    writer.close()
    steady_writer.close()
