"""Several daemons on one PostgreSQL: the hints they send each other (LISTEN/NOTIFY) and the state they
share (pause). Real daemons on a real PostgreSQL and the loopback SMTP simulator; another daemon's writes
are played by a store of its own on the same database (a daemon id of its own), or by a second daemon."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from daemon.core.models import Channel, NewNotification
from daemon.database_url import parse_postgres_url
from daemon.simulators.suite import SimulatorSuite
from daemon.storage.postgres import PostgresStore
from tests.conftest import RunningDaemon, make_config, start_daemon, stop_daemon

OTHER = "elsewhere:1:0000"  # the id of a daemon that is only a store here


async def until(condition: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Poll ``condition`` (tests only) until true; fails naming ``what`` after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def other(pg_database: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(parse_postgres_url(pg_database), OTHER)
    await store.open()
    yield store
    await store.close()


def node_config(root: Path, name: str, url: str, suite: SimulatorSuite) -> Any:
    # email only: the bot (Telegram) must run on one daemon at a time, which is another test's subject
    return make_config(root / name, storage={"url": url}, email=suite.config_sections()["email"])


@pytest.fixture
async def node(short_tmp: Path, pg_database: str, suite: SimulatorSuite) -> AsyncIterator[RunningDaemon]:
    running = await start_daemon(node_config(short_tmp, "b", pg_database, suite))
    yield running
    await stop_daemon(running)


async def send_elsewhere(store: PostgresStore, text: str, at: datetime | None = None) -> int:
    recipient = await store.add_recipient("Ann", "ann@example.com", None, None)
    made, _ = await store.create_notification(
        NewNotification(recipient.id, text, (Channel.EMAIL,)), at or datetime.now(UTC))
    return made.id


async def test_a_send_stored_by_another_daemon_is_delivered_at_once_not_at_the_next_lease_tick(
    node: RunningDaemon, other: PostgresStore, suite: SimulatorSuite
) -> None:
    # the node's timer knows of nothing due and its lease job looks again only every lease / 3 = 10 s:
    # only the NOTIFY hint can make this prompt
    await asyncio.sleep(0.2)  # the node has looked and found nothing
    nid = await send_elsewhere(other, "from elsewhere")
    await until(lambda: _status_is(other, nid, "delivered"), 3.0, "delivered by the listening daemon")
    assert len(suite.smtp.received) == 1


async def test_a_retry_scheduled_by_another_daemon_arms_this_daemons_timer(
    node: RunningDaemon, other: PostgresStore, suite: SimulatorSuite
) -> None:
    nid = await send_elsewhere(other, "later", datetime.now(UTC) + timedelta(seconds=1))
    await until(lambda: _status_is(other, nid, "delivered"), 4.0, "delivered when due")


async def test_subscribe_streams_status_changes_made_by_another_daemon(
    node: RunningDaemon, other: PostgresStore
) -> None:
    nid = await send_elsewhere(other, "cancel me", datetime.now(UTC) + timedelta(hours=1))
    async with node.client.subscribe(["notification.status"]) as stream:
        await other.cancel(nid, datetime.now(UTC))
        event = await asyncio.wait_for(anext(stream), 5)
    assert event["event"] == "notification.status"
    assert {k: event["data"][k] for k in ("id", "status", "channel")} == \
        {"id": nid, "status": "cancelled", "channel": "email"}


async def test_pause_on_one_daemon_holds_delivery_on_every_daemon_until_resume_on_another(
    short_tmp: Path, pg_database: str, suite: SimulatorSuite, node: RunningDaemon, other: PostgresStore
) -> None:
    a = await start_daemon(node_config(short_tmp, "a", pg_database, suite))
    try:
        async with node.client.subscribe(["daemon.paused"]) as stream:
            assert await a.call("pause") == {"paused": True}
            event = await asyncio.wait_for(anext(stream), 5)
        assert event["data"] == {"paused": True}
        assert (await node.call("status"))["paused"] is True
        nid = await send_elsewhere(other, "held")
        await asyncio.sleep(0.5)
        assert (await other.get_notification(nid)).status == "queued"  # type: ignore[union-attr]
        await node.call("resume")
        await until(lambda: _status_is(other, nid, "delivered"), 3.0, "delivered after resume")
        assert a.daemon.engine.paused is False
    finally:
        await stop_daemon(a)


async def test_a_pause_outlives_a_restart(short_tmp: Path, pg_database: str, suite: SimulatorSuite) -> None:
    first = await start_daemon(node_config(short_tmp, "a", pg_database, suite))
    await first.call("pause")
    await stop_daemon(first)
    second = await start_daemon(node_config(short_tmp, "a", pg_database, suite))
    try:
        assert (await second.call("status"))["paused"] is True
    finally:
        await stop_daemon(second)


async def test_the_listener_reconnects_when_its_connection_is_killed_and_hints_arrive_again(
    node: RunningDaemon, other: PostgresStore, postgres_server: str
) -> None:
    admin = await asyncpg.connect(postgres_server)
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'failover-notify listen'")
    finally:
        await admin.close()
    assert killed == 1
    listener = node.daemon.cluster._listener
    await until(lambda: _true(listener.connections == 2), 5.0, "listening again")
    nid = await send_elsewhere(other, "after the cut")
    await until(lambda: _status_is(other, nid, "delivered"), 3.0, "delivered on the new connection's hint")


async def _status_is(store: PostgresStore, nid: int, status: str) -> bool:
    n = await store.get_notification(nid)
    return n is not None and n.status == status


async def _true(value: bool) -> bool:
    return value
