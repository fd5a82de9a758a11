"""Rate limits hold for the cluster: three real daemons on one PostgreSQL deliver a burst through the
Telegram simulator in strict mode (its flood control: 30 messages a second per bot, 1 a second per
chat) and it answers no 429. With limits per daemon the same burst earned 33 429s (run on the code
before the shared limiter, commit 09058e5)."""

from __future__ import annotations

import asyncio
import time
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg

from daemon.simulators.suite import SimulatorSuite
from tests.conftest import RunningDaemon, make_config, start_daemon, stop_daemon

BUSY_CHATS = [7001, 7002, 7003]
PER_BUSY_CHAT = 15  # 1/s per chat: ~14 s for these
QUIET_CHATS = [8000 + i for i in range(45)]  # one message each: with the busy ones, 90 at 30/s per bot


async def wait_delivered(daemon: RunningDaemon, expected: int, timeout: float) -> dict[str, int]:
    async with asyncio.timeout(timeout):
        while True:
            status = await daemon.call("status")
            if status["queue_depth"] == 0 and sum(status["counts"].values()) == expected:
                return dict(status["counts"])
            await asyncio.sleep(0.1)


async def test_three_daemons_on_one_database_stay_within_telegrams_limits_together(
    short_tmp: Path, pg_database: str, suite: SimulatorSuite
) -> None:
    suite.telegram.limit_rate(rate_global=30.0, rate_per_chat=1.0)
    sections = {"telegram": suite.config_sections()["telegram"], "storage": {"url": pg_database},
                "retry": {"attempts_per_channel": 1}}
    nodes: list[RunningDaemon] = []
    try:
        delivered_by: dict[str, int] = {}
        for name in ("a", "b", "c"):
            node = await start_daemon(make_config(short_tmp / name, **sections))
            nodes.append(node)
            delivered_by[name] = 0
            node.daemon.events.tap(partial(_count, delivered_by, name))
        first = nodes[0]
        busy = [(await first.call("recipient.add", name=f"busy{c}", telegram_chat_id=c))["id"] for c in BUSY_CHATS]
        quiet = [(await first.call("recipient.add", name=f"q{c}", telegram_chat_id=c))["id"] for c in QUIET_CHATS]
        sends = [rid for _ in range(PER_BUSY_CHAT) for rid in busy] + quiet
        began = time.monotonic()
        # each message through another daemon in turn: the one that stores a send claims it first, so
        # every daemon delivers to every busy chat
        for i, rid in enumerate(sends):
            await nodes[i % 3].call("send", recipient_id=rid, message=f"burst {i}", chain=["telegram"])
        counts = await wait_delivered(first, len(sends), timeout=45)
        took = time.monotonic() - began
    finally:
        for node in nodes:
            await stop_daemon(node)
    assert suite.telegram.flood is not None
    refusals = suite.telegram.flood.refusals
    print(f"\n{len(sends)} messages by 3 daemons in {took:.1f} s, {refusals} x 429")
    assert refusals == 0
    assert counts == {"delivered": len(sends)}
    assert len(suite.telegram.messages) == len(sends)
    assert all(delivered_by.values()), delivered_by  # all three took part


def _count(delivered_by: dict[str, int], name: str, kind: str, data: Any) -> None:
    if kind == "attempt.finished" and data["outcome"] == "delivered":
        delivered_by[name] += 1


async def test_when_the_shared_limits_cannot_be_read_nothing_is_sent_and_delivery_resumes_after(
    short_tmp: Path, pg_database: str, suite: SimulatorSuite
) -> None:
    """A storage fault on the limiter's call alone (its function renamed away): the attempt is
    interrupted as for any storage fault, no message goes out unpaced, and the daemon keeps running."""
    sections = {"telegram": suite.config_sections()["telegram"], "storage": {"url": pg_database}}
    node = await start_daemon(make_config(short_tmp, **sections))
    admin = await asyncpg.connect(pg_database)
    try:
        rid = (await node.call("recipient.add", name="r", telegram_chat_id=BUSY_CHATS[0]))["id"]
        await admin.execute("ALTER FUNCTION fnotify_rate_reserve RENAME TO fnotify_rate_reserve_away")
        nid = (await node.call("send", recipient_id=rid, message="paced or not at all", chain=["telegram"]))["id"]
        async with asyncio.timeout(10):
            while not (await node.call("show", id=nid))["attempts"]:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        assert suite.telegram.messages == []
        shown = await node.call("show", id=nid)
        assert shown["status"] in ("queued", "sending")
        assert [a["outcome"] for a in shown["attempts"]] in ([None], ["interrupted"])
        await admin.execute("ALTER FUNCTION fnotify_rate_reserve_away RENAME TO fnotify_rate_reserve")
        final = await node.wait_final(nid, timeout=10)
    finally:
        await admin.close()
        await stop_daemon(node)
    assert final["status"] == "delivered"
    assert [m.text for m in suite.telegram.messages] == ["paced or not at all"]
    assert "interrupted" in [a["outcome"] for a in final["attempts"]]
