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
