"""Leases with the real engine, on both stores: a daemon keeps renewing the lease of an attempt that
runs longer than the lease, so no other daemon takes it; and a running daemon takes over the rows of a
daemon that died once their lease runs out, recording the dead one's attempt ``interrupted``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon.config import Config
from daemon.core.models import Channel, NewNotification, Outcome, utcnow
from daemon.core.store import Store
from daemon.simulators.suite import SimulatorSuite
from daemon.storage.factory import make_store
from tests.conftest import RunningDaemon, make_config, start_daemon, stop_daemon
from tests.pg import create_database, drop_database

LEASE = 0.6  # seconds: renewed every 0.2 s


@pytest.fixture(params=["sqlite", "postgres"])
async def config(request: pytest.FixtureRequest, short_tmp: Path, suite: SimulatorSuite) -> AsyncIterator[Config]:
    """A daemon config on the simulators with a short lease, on SQLite or on a fresh PostgreSQL database."""
    storage: dict[str, Any] = {"lease": LEASE}
    admin = ""
    if request.param == "postgres":
        admin = request.getfixturevalue("postgres_server")
        storage["url"] = await create_database(admin)
    yield make_config(short_tmp, storage=storage, **suite.config_sections())
    if admin:
        await drop_database(admin, storage["url"])


@pytest.fixture
async def other(config: Config) -> AsyncIterator[Store]:
    """The same database opened apart from the daemon: another daemon, as far as claims go."""
    store = make_store(config)
    await store.open()
    yield store
    await store.close()


async def first_attempt_started(daemon: RunningDaemon, notification_id: int) -> None:
    async with asyncio.timeout(10):
        while not (await daemon.call("show", id=notification_id))["attempts"]:
            await asyncio.sleep(0.02)


async def test_a_slow_attempt_keeps_its_lease_so_no_other_daemon_takes_it(
    config: Config, other: Store, suite: SimulatorSuite
) -> None:
    suite.smtp.faults.inject("latency", delay=5 * LEASE, count=1)
    daemon = await start_daemon(config)
    try:
        ann = await daemon.call("recipient.add", name="Ann", email="ann@example.com")
        sent = await daemon.call("send", recipient_id=ann["id"], message="slow one", chain=["email"])
        await first_attempt_started(daemon, sent["id"])
        for _ in range(12):  # 2.4 s: four leases' worth, while the attempt runs
            now = utcnow()
            assert await other.claim_due(now, 10, "other-host:1:beef", now + timedelta(seconds=30)) == []
            await asyncio.sleep(LEASE / 3)
        shown = await daemon.wait_final(sent["id"])
    finally:
        await stop_daemon(daemon)
    assert shown["status"] == "delivered"
    assert [a["outcome"] for a in shown["attempts"]] == ["delivered"]
    assert len(suite.smtp.received) == 1


async def test_a_daemon_takes_over_a_dead_daemons_notification_when_its_lease_runs_out(
    config: Config, other: Store, suite: SimulatorSuite, caplog: pytest.LogCaptureFixture
) -> None:
    dead = "dead-host:4242:dead"
    ann = await other.add_recipient("Ann", "ann@example.com", None, None)
    now = utcnow()
    notification, _ = await other.create_notification(NewNotification(ann.id, "orphan", (Channel.EMAIL,)), now)
    await other.claim_due(now, 10, dead, now + timedelta(seconds=1))
    await other.start_attempt(notification.id, Channel.EMAIL, now, 1, dead)  # then the daemon "died"

    daemon = await start_daemon(config)
    try:
        shown = await daemon.wait_final(notification.id)
    finally:
        await stop_daemon(daemon)
    assert shown["status"] == "delivered"
    interrupted, delivered = shown["attempts"]
    assert interrupted["outcome"] == Outcome.INTERRUPTED and dead in interrupted["error"]
    assert delivered["outcome"] == Outcome.DELIVERED and delivered["channel"] == "email"
    assert f"took over the notifications of daemon {dead}" in caplog.text
