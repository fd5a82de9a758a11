"""The acknowledged ``subscribe`` stream and what is built on it: ``fnotify send --wait`` follows
events instead of polling. The daemon runs in-process on a real Unix socket; the CLI is the real
``fnotify`` in a child process."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from daemon import protocol
from daemon.api.requests import ById
from daemon.client import DaemonClient, RemoteError
from daemon.protocol import FINAL_STATUSES
from daemon.simulators.suite import SimulatorSuite
from tests.conftest import RunningDaemon

REPO = Path(__file__).resolve().parent.parent


async def test_an_event_published_right_after_subscribe_returns_is_always_received(
    bare_daemon: RunningDaemon,
) -> None:
    await bare_daemon.call("recipient.add", name="Ann")
    for _ in range(20):  # the old generator-based subscribe lost this race every time
        async with bare_daemon.client.subscribe(["notification.created"]) as stream:
            sent = await bare_daemon.call("send", recipient_id=1, message="hello", chain=["sms"])
            event = await asyncio.wait_for(anext(stream), 5)
        assert event["event"] == "notification.created" and event["data"]["id"] == sent["id"]


async def test_the_client_stays_free_for_calls_while_its_stream_is_open(bare_daemon: RunningDaemon) -> None:
    client = bare_daemon.client
    stream = await client.subscribe()
    try:
        assert await client.call("ping") == "pong"
        added = await client.call("recipient.add", name="Ann")
        event = await asyncio.wait_for(anext(stream), 5)
        assert event["event"] == "recipient.added" and event["data"] == added
    finally:
        await stream.close()
    assert [e async for e in stream] == []  # a closed stream just ends


async def test_a_refused_subscription_raises_before_any_stream_is_handed_out(bare_daemon: RunningDaemon) -> None:
    with pytest.raises(RemoteError, match="events: must be a list of strings") as refused:
        await bare_daemon.client.subscribe(["notification.created", 7])  # type: ignore[list-item]
    assert refused.value.field == "events"


async def test_the_stream_ends_when_the_daemon_stops(bare_daemon: RunningDaemon) -> None:
    stream = await DaemonClient(bare_daemon.config.daemon.socket_path).subscribe()
    await bare_daemon.daemon.stop()
    assert [e async for e in stream] == []


def test_the_client_checks_reply_and_event_envelopes_before_trusting_their_types() -> None:
    assert protocol.decode_reply(b'{"id":1,"ok":false}') == {
        "id": 1, "ok": False, "error": {"code": "error", "message": "unknown error"}}
    for garbled in (b'{"id":1,"ok":tr', b'[1]', b'{"id":1,"result":2}'):
        with pytest.raises(protocol.ProtocolError):
            protocol.decode_reply(garbled)
    for garbled in (b'{"event":1,"data":{}}', b'{"event":"x","data":[]}', b'"x"'):
        with pytest.raises(protocol.ProtocolError):
            protocol.decode_event(garbled)


# -- fnotify send --wait -----------------------------------------------------------------------------

async def fnotify(socket: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon", "--socket", str(socket), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=str(REPO),
    )


def count_shows(running: RunningDaemon, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the id of every ``show`` the socket serves (the real op runs; its reply is written in
    the same step as the record, so a test that saw the record knows the reply is on its way)."""
    shows: list[int] = []
    real: Callable[[ById], Awaitable[Any]] = running.daemon.server._ops["show"]

    async def show(request: ById) -> Any:  # an op gets its validated request model
        result = await real(request)
        shows.append(request.id)
        return result

    monkeypatch.setitem(running.daemon.server._ops, "show", show)
    return shows


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


async def test_send_wait_follows_status_events_and_reads_the_notification_only_twice(
    daemon: RunningDaemon, suite: SimulatorSuite, monkeypatch: pytest.MonkeyPatch
) -> None:
    await daemon.call("recipient.add", name="Ann", phone="+14155550100")
    shows = count_shows(daemon, monkeypatch)
    # the SMS provider answers after 1.2 s: the notification is "sending" for longer than a poll period
    suite.sms.faults.inject("latency", count=1, delay=1.2)
    await daemon.call("pause")  # the CLI finds it queued and has to wait for events
    cli = await fnotify(daemon.config.daemon.socket_path, "send", "--to", "1", "--message", "disk full",
                        "--chain", "sms", "--wait", "--timeout", "20")
    await until(lambda: len(shows) == 1)  # subscribed (acknowledged), then read once: queued
    await daemon.call("resume")  # queued -> sending, then 1.2 s later -> delivered
    out, err = await asyncio.wait_for(cli.communicate(), 20)
    assert cli.returncode == 0, err.decode()
    assert "notification 1 -> recipient 1: DELIVERED" in out.decode()
    # one read to start from and one for the final attempt log: none per status change, none per second
    assert shows == [1, 1]
    assert (await daemon.call("show", id=1))["status"] in FINAL_STATUSES


async def test_send_wait_gives_up_after_its_timeout(bare_daemon: RunningDaemon) -> None:
    await bare_daemon.call("recipient.add", name="Ann")
    await bare_daemon.call("pause")
    cli = await fnotify(bare_daemon.config.daemon.socket_path, "send", "--to", "1", "--message", "held",
                        "--wait", "--timeout", "0.3")
    _, err = await asyncio.wait_for(cli.communicate(), 20)
    assert cli.returncode == 1
    assert "notification 1 is still not final after 0.3 s" in err.decode()


async def test_send_wait_says_so_when_the_daemon_stops_before_the_notification_is_final(
    bare_daemon: RunningDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    await bare_daemon.call("recipient.add", name="Ann")
    shows = count_shows(bare_daemon, monkeypatch)
    await bare_daemon.call("pause")
    cli = await fnotify(bare_daemon.config.daemon.socket_path, "send", "--to", "1", "--message", "held",
                        "--wait", "--timeout", "20")
    await until(lambda: len(shows) == 1)
    await bare_daemon.daemon.stop()
    _, err = await asyncio.wait_for(cli.communicate(), 20)
    assert cli.returncode == 3
    assert "the daemon ended the event stream before notification 1 was final" in err.decode()
