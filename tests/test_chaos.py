"""Chaos: thousands of notifications, random provider failures in all three simulators, and the
daemon subprocess SIGKILLed three times at random moments. At the end every notification is final,
none is lost, and duplicate deliveries (counted and printed) come only from attempts in flight at a
kill (at-least-once delivery)."""

from __future__ import annotations

import asyncio
import random
import re
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

from daemon.client import DaemonClient, DaemonUnavailable
from daemon.core.models import FINAL_STATUSES
from daemon.simulators.suite import SimulatorSuite
from tests.daemon_process import DaemonProcess, write_config

RECIPIENTS = 60
NOTIFICATIONS = 3000
SENDERS = 8
KILLS = 3
TOKEN = re.compile(r"chaos-(\d+)\b")


def inject_chaos(suite: SimulatorSuite) -> None:
    """Random failures (probability < 1) on every channel: transient mostly, a few permanent."""
    suite.telegram.faults.inject("error", probability=0.12)
    suite.telegram.faults.inject("down", probability=0.04)
    suite.telegram.faults.inject("permanent", probability=0.02)
    suite.smtp.faults.inject("error", probability=0.12)
    suite.smtp.faults.inject("permanent", probability=0.02)
    suite.sms.faults.inject("error", probability=0.12)
    suite.sms.faults.inject("down", probability=0.04)


async def send_all(daemon: DaemonProcess, indices: list[int]) -> None:
    """Send each notification until the daemon acknowledges it; the idempotency key makes a retried
    send after a kill return the stored one instead of a second notification. Also the cluster chaos
    test's sender (one per daemon)."""
    client = DaemonClient(daemon.socket_path, timeout=5)
    try:
        for i in indices:
            for _ in range(2000):  # bounded: 100 s of a daemon down at 0.05 s a try
                try:
                    await client.call("send", recipient_id=1 + i % RECIPIENTS, message=f"chaos-{i} alert",
                                      subject=f"chaos-{i}", idempotency_key=f"chaos-{i}")
                    break
                except DaemonUnavailable:
                    await asyncio.sleep(0.05)  # killed: wait for the restart
            else:
                raise AssertionError(f"chaos-{i}: the daemon behind {daemon.socket_path} never came back")
    finally:
        await client.close()


async def kill_and_restart(daemon: DaemonProcess, rng: random.Random, sending: asyncio.Task[object]) -> list[float]:
    moments = []
    began = time.monotonic()
    for _ in range(KILLS):
        await asyncio.sleep(rng.uniform(0.3, 1.5))
        moments.append(round(time.monotonic() - began, 2))
        daemon.kill()
        await daemon.wait()
        await daemon.start(timeout=30)
    return moments


async def wait_all_final(daemon: DaemonProcess, timeout: float) -> None:
    async with DaemonClient(daemon.socket_path, timeout=10) as client, asyncio.timeout(timeout):
        while True:
            status = await client.call("status")
            if status["queue_depth"] == 0 and sum(status["counts"].values()) >= NOTIFICATIONS:
                return
            await asyncio.sleep(0.2)


def delivered_tokens(suite: SimulatorSuite) -> Counter[int]:
    """How many times each notification reached a provider, over all channels."""
    found: Counter[int] = Counter()
    texts = [m.text for m in suite.telegram.messages] + [m.subject for m in suite.smtp.received] + \
        [m.body for m in suite.sms.messages]
    for text in texts:
        if match := TOKEN.search(text):
            found[int(match.group(1))] += 1
    return found


@pytest.mark.timeout(240)  # a load test: ~50 s on a busy 2-core machine; the limit only catches a hang
async def test_chaos_every_notification_ends_final_and_only_in_flight_attempts_duplicate(short_tmp: Path) -> None:
    rng = random.Random(20261125)
    async with SimulatorSuite() as suite:
        sections = suite.config_sections()
        sections["telegram"].update(rate_global=5000.0, rate_per_chat=1000.0)
        sections["retry"] = {"attempts_per_channel": 3, "backoff_initial": 0.05, "backoff_max": 0.3}
        sections["breaker"] = {"threshold": 8, "cooldown": 0.5}
        config = write_config(short_tmp / "fnotify.toml", short_tmp, sections)
        daemon = DaemonProcess(config, short_tmp / "fnotify.sock", short_tmp / "daemon.log")
        await daemon.start()
        began = time.monotonic()
        try:
            async with DaemonClient(daemon.socket_path) as client:
                for r in range(RECIPIENTS):
                    await client.call("recipient.add", name=f"user{r}", telegram_chat_id=10_000 + r,
                                      email=f"user{r}@example.com", phone=f"+1415555{r:04d}")
            inject_chaos(suite)
            slices = [list(range(k, NOTIFICATIONS, SENDERS)) for k in range(SENDERS)]
            sending = asyncio.ensure_future(asyncio.gather(*(send_all(daemon, s) for s in slices)))
            moments = await kill_and_restart(daemon, rng, sending)
            await asyncio.wait_for(sending, timeout=60)
            await wait_all_final(daemon, timeout=60)
            took = time.monotonic() - began
            assert await daemon.terminate() == 0
        finally:
            if daemon.proc is not None and daemon.proc.returncode is None:
                daemon.kill()
                await daemon.wait()

        with sqlite3.connect(short_tmp / "fnotify.db") as db:
            rows = db.execute("SELECT idempotency_key, status FROM notifications").fetchall()
            outcomes = Counter(dict(db.execute("SELECT outcome, count(*) FROM attempts GROUP BY outcome").fetchall()))
            interrupted = {key for (key,) in db.execute(
                "SELECT DISTINCT n.idempotency_key FROM attempts a JOIN notifications n ON n.id = a.notification_id"
                " WHERE a.outcome = 'interrupted'")}
        deliveries = delivered_tokens(suite)

    keys = Counter(key for key, _ in rows)
    statuses = Counter(status for _, status in rows)
    assert len(rows) == NOTIFICATIONS and set(keys) == {f"chaos-{i}" for i in range(NOTIFICATIONS)}  # none lost
    assert max(keys.values()) == 1  # the retried sends made no second notification
    assert set(statuses) <= FINAL_STATUSES, statuses  # every one final
    delivered = statuses["delivered"]
    assert delivered > NOTIFICATIONS * 0.95
    assert len(deliveries) >= delivered  # every delivered notification reached a provider
    duplicates = {i: n for i, n in deliveries.items() if n > 1}
    extra = sum(n - 1 for n in duplicates.values())
    print(f"\nchaos: {NOTIFICATIONS} notifications, {RECIPIENTS} recipients, {KILLS} SIGKILLs at {moments} s,"
          f" {took:.1f} s in all; statuses {dict(statuses)}; attempts {dict(outcomes)};"
          f" {len(duplicates)} notification(s) delivered more than once ({extra} extra deliveries):"
          f" {sorted(duplicates.items())[:50]}")
    assert extra <= outcomes["interrupted"]  # only attempts in flight at a kill may repeat...
    assert {f"chaos-{i}" for i in duplicates} <= interrupted  # ...and each duplicate had one
