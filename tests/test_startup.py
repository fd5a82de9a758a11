"""Start-up stays fast whatever the backlog: the daemon is ready before aiogram is even imported (the
Telegram channel sends without it), and recovery and arming the timer read indexes, never the backlog.

Speed itself is measured by ``make bench`` ("ready with 100k backlog"); these tests check the
structure that makes it fast.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest

from daemon.core.errors import ConfigError
from daemon.core.models import utcnow
from daemon.runtime import telegram_bot
from daemon.runtime.app import Daemon
from daemon.simulators.suite import SimulatorSuite
from daemon.storage import SqliteStore
from tests.conftest import make_config, start_daemon, stop_daemon

REPO = Path(__file__).resolve().parent.parent
PARTIAL_INDEXES = ("notifications_lease", "notifications_due", "attempts_unfinished", "notifications_claim")
"""Partial indexes: over the few rows claimed or with an open attempt, or (notifications_claim, the claim's)
over unclaimed rows in claim order, walked only until the claim's LIMIT is met."""


def test_the_daemon_and_its_send_path_import_neither_aiogram_nor_aiohttp() -> None:
    code = ("import sys, daemon.runtime.runner, daemon.channels.telegram, daemon.cli.doctor;"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'aiogram', 'aiohttp', 'prometheus_client'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def reads_the_backlog(plan: list[str]) -> list[str]:
    """The plan steps that visit notifications or attempts row by row (not through an index)."""
    bad = []
    for step in plan:
        if " notifications" not in step and " attempts" not in step:
            continue
        searched = step.startswith("SEARCH") and " USING " in step
        scans_a_partial_index = step.startswith("SCAN") and any(f"INDEX {i}" in step for i in PARTIAL_INDEXES)
        if not (searched or scans_a_partial_index):
            bad.append(step)
    return bad


async def test_recovery_and_arming_the_timer_read_indexes_never_the_backlog(short_tmp: Path) -> None:
    path = short_tmp / "fnotify.db"
    store = SqliteStore(path)
    await store.open()
    await store.close()
    with sqlite3.connect(path) as db:  # a backlog, two rows claimed when the daemon died, one attempt open
        db.executemany("INSERT INTO notifications (recipient_id, text, chain, status, next_attempt_at, claimed_by,"
                       " lease_until, created_at, updated_at) VALUES (1, 'x', 'telegram', 'queued', ?, ?, ?, 1, 1)",
                       [(1_000 + i, "dead:1:x" if i < 2 else None, 2.0 if i < 2 else None) for i in range(500)])
        db.execute("INSERT INTO attempts (notification_id, channel, started_at) VALUES (1, 'telegram', 1)")
    statements: list[str] = []
    await store.open()
    try:
        assert store._write is not None and store._read is not None
        await store._write.run(lambda raw: raw.set_trace_callback(statements.append))
        await store._read.set_trace_callback(statements.append)
        assert await store.recover_interrupted(utcnow(), "me:2:y") == 1
        assert await store.next_due_time() is not None
        assert len(await store.claim_due(utcnow(), 10, "me:2:y", utcnow() + timedelta(seconds=30))) == 10
        await store._write.run(lambda raw: raw.set_trace_callback(None))
        await store._read.set_trace_callback(None)
    finally:
        await store.close()
    queries = [s for s in statements if s.lstrip().upper().startswith(("SELECT", "UPDATE"))]
    assert len(queries) >= 3, statements  # recovery, the timer's min(), the claim
    with sqlite3.connect(path) as db:
        for sql in queries:
            plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}")]
            assert not reads_the_backlog(plan), f"{sql}\n{plan}"


@pytest.fixture
def slow_bot_import(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Importing the bot (aiogram) blocks until the test sets the returned event."""
    release = threading.Event()
    real = telegram_bot.import_bot_runner

    def held() -> ModuleType:
        release.wait(30)
        return real()

    monkeypatch.setattr(telegram_bot, "import_bot_runner", held)
    return release


async def test_the_daemon_is_ready_links_and_delivers_on_telegram_before_the_bot_is_up(
    short_tmp: Path, suite: SimulatorSuite, slow_bot_import: threading.Event
) -> None:
    running = await start_daemon(make_config(short_tmp, **suite.config_sections()))
    try:
        assert running.daemon.bot is None  # ready, and the bot not yet imported
        ann = (await running.call("recipient.add", name="Ann", telegram_chat_id=4242))["id"]
        sent = await running.call("send", recipient_id=ann, message="db-1 down", chain=["telegram"])
        assert (await running.wait_final(sent["id"]))["status"] == "delivered"
        link = await running.call("recipient.link", id=ann)  # getMe without aiogram
        assert link["url"].startswith("https://t.me/fnotify_test_bot?start=")
        assert running.daemon.bot is None
        assert [m.text for m in suite.telegram.messages_to(4242)] == ["db-1 down"]

        slow_bot_import.set()
        bot = await asyncio.wait_for(running.daemon.wait_bot(), 30)
        assert bot is not None
        await asyncio.wait_for(bot.ready.wait(), 5)
        suite.telegram.user_sends(4242, "/help")
        async with asyncio.timeout(5):
            while len(suite.telegram.messages_to(4242)) < 2:
                await asyncio.sleep(0.01)
    finally:
        slow_bot_import.set()
        await stop_daemon(running)


async def test_stopping_while_the_bot_is_still_being_imported_stops_at_once(
    short_tmp: Path, suite: SimulatorSuite, slow_bot_import: threading.Event
) -> None:
    running = await start_daemon(make_config(short_tmp, **suite.config_sections()))
    began = time.monotonic()
    await stop_daemon(running)
    took = time.monotonic() - began
    slow_bot_import.set()
    assert running.daemon.bot is None
    assert took < 5  # it did not wait for the import (held for 30 s)


async def test_a_webhook_port_in_use_still_refuses_the_start(short_tmp: Path, suite: SimulatorSuite) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        sections = suite.config_sections()
        sections["telegram"].update(mode="webhook", webhook_url="https://bot.example.test/hook",
                                    webhook_listen=f"127.0.0.1:{port}", webhook_secret="s3cret-webhook-token-0123")
        daemon = Daemon(make_config(short_tmp, **sections))
        with pytest.raises(ConfigError, match=rf"webhook_listen = '127.0.0.1:{port}': cannot listen"):
            await daemon.start()
    assert not (short_tmp / "fnotify.sock").exists()


def test_a_daemon_on_sqlite_never_imports_asyncpg() -> None:
    code = ("import asyncio, sys, pathlib; from daemon.runtime.cluster import ClusterLink;"
            "from daemon.storage import SqliteStore;"
            "asyncio.run(ClusterLink(SqliteStore(pathlib.Path('unused.db')), None, None).start());"
            "print('asyncpg' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_a_quiet_moment_is_a_stretch_without_attempts_or_the_limit() -> None:
    clock = FakeClock()
    busy_until = [1.0, 1.3]  # busy before 1.0 s, quiet from 1.0 to 1.1 (too short), busy again until 1.3

    def busy() -> bool:
        return clock.now < busy_until[0] or 1.1 <= clock.now < busy_until[1]

    assert await telegram_bot.wait_for_quiet(busy, quiet=0.2, limit=30, poll=0.05,
                                             monotonic=clock.monotonic, sleep=clock.sleep)
    assert 1.5 <= clock.now < 1.6  # 0.2 s of quiet after 1.3, not the 0.1 s stretch at 1.0
    clock.now = 0.0
    assert not await telegram_bot.wait_for_quiet(lambda: True, quiet=0.2, limit=30, poll=0.05,
                                                 monotonic=clock.monotonic, sleep=clock.sleep)
    assert 30 <= clock.now < 30.1


async def test_aiogram_is_imported_only_once_no_attempt_is_in_flight(
    short_tmp: Path, suite: SimulatorSuite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The import holds the GIL for seconds; attempts running beside it wait at every step (issue 14:
    failover p50 95 ms, p99 432 ms with the import overlapping). So it waits for a quiet moment."""
    imported_at: list[float] = []
    real = telegram_bot.import_bot_runner

    def recorded() -> ModuleType:
        imported_at.append(time.time())
        return real()

    monkeypatch.setattr(telegram_bot, "bot_loaded", lambda: False)  # as in a fresh daemon process
    monkeypatch.setattr(telegram_bot, "import_bot_runner", recorded)
    suite.telegram.faults.inject("latency", count=1, delay=1.5)
    running = await start_daemon(make_config(short_tmp, **suite.config_sections()))
    try:
        ann = (await running.call("recipient.add", name="Ann", telegram_chat_id=4242))["id"]
        sent = await running.call("send", recipient_id=ann, message="slow", chain=["telegram"])
        assert (await running.wait_final(sent["id"]))["status"] == "delivered"
        assert await asyncio.wait_for(running.daemon.wait_bot(), 30) is not None
        attempt = (await running.call("show", id=sent["id"]))["attempts"][-1]
        finished = datetime.fromisoformat(attempt["finished_at"]).timestamp()
        assert len(imported_at) == 1 and imported_at[0] >= finished  # not while the attempt was in flight
    finally:
        await stop_daemon(running)


async def test_stopping_while_the_bot_waits_for_a_quiet_moment_stops_at_once(
    short_tmp: Path, suite: SimulatorSuite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(telegram_bot, "bot_loaded", lambda: False)
    monkeypatch.setattr(telegram_bot, "QUIET", 60.0)  # the wait would last a minute
    running = await start_daemon(make_config(short_tmp, **suite.config_sections()))
    began = time.monotonic()
    await stop_daemon(running)
    assert time.monotonic() - began < 5
    assert running.daemon.bot is None


async def test_a_send_just_taken_keeps_the_bot_import_waiting(short_tmp: Path) -> None:
    """Enqueue load holds the GIL as much as deliveries do: a send within QUIET is no quiet moment."""
    running = await start_daemon(make_config(short_tmp))
    try:
        await running.call("pause")  # nothing in flight: only the send itself can make it busy
        assert not running.daemon._busy()
        ann = (await running.call("recipient.add", name="Ann", email="ann@example.com"))["id"]
        await running.call("send", recipient_id=ann, message="hi")
        assert running.daemon._busy()
        running.daemon.service.last_send -= telegram_bot.QUIET  # as if QUIET seconds went by
        assert not running.daemon._busy()
    finally:
        await stop_daemon(running)
