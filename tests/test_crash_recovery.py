"""Kill the daemon with SIGKILL while notifications are pending and in flight; start it again;
every notification reaches a final status and nothing is lost."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from pathlib import Path

from daemon.client import DaemonClient
from daemon.simulators.suite import SimulatorSuite
from tests.daemon_process import DaemonProcess, write_config

RECIPIENTS = 10
NOTIFICATIONS = 60


async def test_sigkill_mid_send_loses_nothing_and_resumes_every_notification(short_tmp: Path) -> None:
    async with SimulatorSuite() as suite:
        sections = suite.config_sections()
        sections["retry"] = {"attempts_per_channel": 5, "backoff_initial": 0.3, "backoff_max": 0.6}
        sections["breaker"] = {"threshold": 0}  # 15 errors in a row would mark Telegram down: not this test's point
        config = write_config(short_tmp / "fnotify.toml", short_tmp, sections)
        daemon = DaemonProcess(config, short_tmp / "fnotify.sock", short_tmp / "daemon.log")
        await daemon.start()

        # slow Telegram so attempts are in flight at the kill; some 502s so retries are pending
        suite.telegram.faults.inject("error", count=15)
        suite.telegram.faults.inject("latency", delay=1.5)
        async with DaemonClient(daemon.socket_path) as client:
            for i in range(RECIPIENTS):
                await client.call("recipient.add", name=f"user{i}", telegram_chat_id=1000 + i,
                                  email=f"user{i}@example.com")
            sent = await asyncio.gather(*(
                client.call("send", recipient_id=1 + i % RECIPIENTS, message=f"message {i}")
                for i in range(NOTIFICATIONS)
            ))
            ids = [n["id"] for n in sent]
        # kill once attempts are in flight (started on disk, not finished), however busy the machine is
        async with asyncio.timeout(10):
            while not _count(short_tmp, "SELECT count(*) FROM attempts WHERE finished_at IS NULL"):
                await asyncio.sleep(0.02)
        daemon.kill()
        await daemon.wait()

        with sqlite3.connect(short_tmp / "fnotify.db") as db:
            in_flight = db.execute("SELECT count(*) FROM attempts WHERE finished_at IS NULL").fetchone()[0]
            unfinished = db.execute(
                "SELECT count(*) FROM notifications WHERE status IN ('queued', 'sending')").fetchone()[0]
        assert in_flight > 0, "the kill should have caught attempts in flight"
        assert unfinished > 0, "the kill should have left notifications unfinished"

        suite.telegram.faults.clear()
        await daemon.start()
        async with DaemonClient(daemon.socket_path) as client, asyncio.timeout(30):
            while True:
                listing = await client.call("list", limit=1000)
                if all(n["status"] == "delivered" for n in listing) and len(listing) == NOTIFICATIONS:
                    break
                await asyncio.sleep(0.1)
        assert sorted(n["id"] for n in listing) == sorted(ids)
        outcomes = Counter(a["outcome"] for n in listing for a in n["attempts"])
        assert outcomes["interrupted"] == in_flight
        assert outcomes["delivered"] == NOTIFICATIONS
        # at-least-once: every message reached Telegram; only attempts in flight at the kill may repeat
        texts = Counter(m.text for m in suite.telegram.messages)
        assert set(texts) == {f"message {i}" for i in range(NOTIFICATIONS)}
        assert sum(texts.values()) - NOTIFICATIONS <= in_flight
        assert await daemon.terminate() == 0
        assert "marked interrupted, will retry" in daemon.log()


def _count(state: Path, sql: str) -> int:
    with sqlite3.connect(f"file:{state / 'fnotify.db'}?mode=ro", uri=True) as db:
        return int(db.execute(sql).fetchone()[0])
