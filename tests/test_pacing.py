"""Telegram pacing: token buckets keep the daemon under the limits, and a 429 costs no try."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path

import pytest

from daemon.core.ratelimit import Limit, MemoryRateLimits, Pacer, TokenBucket
from daemon.simulators.flood import FloodControl
from daemon.simulators.suite import SimulatorSuite
from tests.conftest import RunningDaemon, make_config, start_daemon, stop_daemon
from tests.test_delivery import CHAT, add_ann, log_of


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Until ``seconds`` from now: concurrent sleepers end at their own moments, not one after another."""
        until = self.now + seconds
        await asyncio.sleep(0)
        self.now = max(self.now, until)


def telegram_pacer(clock: FakeClock, rate_global: float, rate_per_chat: float) -> Pacer:
    return Pacer(MemoryRateLimits(clock), Limit("telegram:1", rate_global), per_key_rate=rate_per_chat,
                 per_key_prefix="telegram:1:chat:", sleep=clock.sleep)


# -- the pure parts ------------------------------------------------------------------------------

def test_a_bucket_lets_its_capacity_through_then_spaces_sends_by_its_rate() -> None:
    bucket = TokenBucket(rate=2.0, capacity=2.0, updated=0.0)
    assert bucket.try_take(0.0) and bucket.try_take(0.0)
    assert not bucket.try_take(0.0)
    assert bucket.wait_time(0.0) == pytest.approx(0.5)
    assert bucket.try_take(0.5)


def test_a_blocked_bucket_waits_out_the_block_even_when_full() -> None:
    bucket = TokenBucket(rate=100.0, updated=0.0)
    bucket.block(3.0)
    assert bucket.wait_time(1.0) == pytest.approx(2.0)
    assert bucket.wait_time(3.0) == 0.0


async def test_the_pacer_spaces_sends_to_one_chat_by_the_per_chat_rate() -> None:
    clock = FakeClock()
    pacer = telegram_pacer(clock, rate_global=1000.0, rate_per_chat=2.0)
    times = []
    for _ in range(5):
        await pacer.acquire(7)
        times.append(clock.now)
    assert [round(t - times[0], 3) for t in times] == [0.0, 0.5, 1.0, 1.5, 2.0]


async def test_the_pacer_spaces_sends_to_many_chats_by_the_global_rate() -> None:
    clock = FakeClock()
    pacer = telegram_pacer(clock, rate_global=10.0, rate_per_chat=1.0)
    start = clock.now
    await asyncio.gather(*(pacer.acquire(chat) for chat in range(20)))
    assert clock.now - start == pytest.approx(1.9, abs=0.01)  # the first goes at once, then one per 0.1 s


async def test_a_blocked_chat_waits_without_holding_up_other_chats() -> None:
    clock = FakeClock()
    pacer = telegram_pacer(clock, rate_global=1000.0, rate_per_chat=1000.0)
    await pacer.block(1, 5.0)
    await pacer.acquire(2)
    assert clock.now == 100.0
    await pacer.acquire(1)
    assert clock.now == pytest.approx(105.0)


def test_the_simulators_flood_control_refuses_a_second_message_in_the_same_instant() -> None:
    clock = FakeClock()
    flood = FloodControl(rate_global=30.0, rate_per_chat=1.0, burst=1.0, clock=clock)
    assert flood.check(5) is None
    assert flood.check(5) == 1 and flood.refusals == 1
    clock.now += 0.05  # past the global spacing (1/30 s), well within the chat's (1 s)
    assert flood.check(5) == 1
    assert flood.check(6) is None  # another chat
    clock.now += 1.0
    assert flood.check(5) is None


# -- against the real daemon and the simulator's limits -------------------------------------------

async def start(short_tmp: Path, suite: SimulatorSuite, **telegram: float) -> RunningDaemon:
    sections = suite.config_sections()
    sections["telegram"].update(telegram)
    return await start_daemon(make_config(short_tmp, **sections, retry={"attempts_per_channel": 1}))


async def wait_all_final(daemon: RunningDaemon, expected: int, timeout: float) -> dict[str, int]:
    async with asyncio.timeout(timeout):
        while True:
            status = await daemon.call("status")
            if status["queue_depth"] == 0 and sum(status["counts"].values()) == expected:
                return dict(status["counts"])
            await asyncio.sleep(0.05)


async def test_a_burst_to_many_chats_is_paced_under_telegrams_limits_with_no_429(
    short_tmp: Path, suite: SimulatorSuite
) -> None:
    chats, per_chat = 25, 16  # 400 messages
    suite.telegram.limit_rate(rate_global=250.0, rate_per_chat=20.0)
    daemon = await start(short_tmp, suite, rate_global=250.0, rate_per_chat=20.0)
    try:
        ids = [(await daemon.call("recipient.add", name=f"r{i}", telegram_chat_id=5000 + i))["id"]
               for i in range(chats)]
        began = time.monotonic()
        for n in range(per_chat):
            for rid in ids:
                await daemon.call("send", recipient_id=rid, message=f"burst {n}", chain=["telegram"])
        counts = await wait_all_final(daemon, chats * per_chat, timeout=12)
        took = time.monotonic() - began
    finally:
        await stop_daemon(daemon)
    assert counts == {"delivered": chats * per_chat}
    assert suite.telegram.flood is not None and suite.telegram.flood.refusals == 0
    assert len(suite.telegram.messages) == chats * per_chat
    print(f"\n{chats * per_chat} messages to {chats} chats in {took:.2f} s, 0 x 429")


async def test_an_unpaced_burst_would_have_been_refused_by_the_simulator(
    short_tmp: Path, suite: SimulatorSuite
) -> None:
    """The control experiment: the same daemon configured above the simulator's limits gets 429s,
    and every notification is still delivered (a 429 costs no try even with one try per channel)."""
    suite.telegram.limit_rate(rate_global=1000.0, rate_per_chat=5.0, burst=1.0)
    daemon = await start(short_tmp, suite, rate_global=1000.0, rate_per_chat=1000.0)
    try:
        rid = (await daemon.call("recipient.add", name="r", telegram_chat_id=CHAT))["id"]
        for n in range(4):
            await daemon.call("send", recipient_id=rid, message=f"m{n}", chain=["telegram"])
        counts = await wait_all_final(daemon, 4, timeout=12)
    finally:
        await stop_daemon(daemon)
    assert counts == {"delivered": 4}
    assert suite.telegram.flood is not None and suite.telegram.flood.refusals > 0


async def test_an_injected_429_is_honoured_for_that_chat_without_burning_the_only_try(
    short_tmp: Path, suite: SimulatorSuite
) -> None:
    daemon = await start(short_tmp, suite)
    try:
        ann = await add_ann(daemon)
        suite.telegram.faults.inject("rate_limit", count=1, retry_after=1, target=CHAT)
        first = await daemon.call("send", recipient_id=ann, message="first")
        await asyncio.sleep(0.1)
        second = await daemon.call("send", recipient_id=ann, message="second")
        first_final, second_final = await daemon.wait_final(first["id"]), await daemon.wait_final(second["id"])
    finally:
        await stop_daemon(daemon)
    assert log_of(first_final) == [("telegram", "retry"), ("telegram", "delivered")]
    assert "not counted" in first_final["attempts"][0]["error"]
    assert first_final["status"] == second_final["status"] == "delivered"
    refused_at = datetime.fromisoformat(first_final["attempts"][0]["finished_at"])
    for attempt in (first_final["attempts"][1], second_final["attempts"][-1]):  # both waited out the chat's block
        assert (datetime.fromisoformat(attempt["finished_at"]) - refused_at).total_seconds() >= 0.95
    assert [m.text for m in suite.telegram.messages_to(CHAT)] == ["first", "second"] or \
        sorted(m.text for m in suite.telegram.messages_to(CHAT)) == ["first", "second"]
