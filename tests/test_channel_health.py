"""The ``health`` reply's picture of each channel: attempts per minute over the last hour by outcome,
and p50 / p95 call latency, from the real daemon's database."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from daemon.api.health import latency_ms, percentile, series_start
from daemon.simulators.suite import SimulatorSuite
from tests.conftest import RunningDaemon
from tests.test_delivery import CHAT, EMAIL, add_ann, deliver, log_of

NOW = datetime(2030, 1, 15, 9, 30, 20, tzinfo=UTC)


def test_buckets_are_whole_minutes_and_the_last_one_holds_now() -> None:
    assert series_start(NOW) == datetime(2030, 1, 15, 8, 31, tzinfo=UTC)
    assert series_start(NOW.replace(second=0)) == datetime(2030, 1, 15, 8, 31, tzinfo=UTC)


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([0.3], 95) == 0.3
    values = [float(v) for v in random.Random(1).sample(range(1, 101), 100)]
    assert percentile(values, 50) == 50 and percentile(values, 95) == 95 and percentile(values, 100) == 100
    assert latency_ms([0.001, 0.002, 0.010, 0.250]) == {"p50": 2.0, "p95": 250.0, "samples": 4}
    assert latency_ms([]) == {"p50": None, "p95": None, "samples": 0}


async def test_attempts_land_in_their_minute_by_outcome(daemon: RunningDaemon, suite: SimulatorSuite) -> None:
    ann = await add_ann(daemon)
    at = NOW - timedelta(minutes=10)  # 09:20:20: bucket 49 of 60 (08:31 is bucket 0)
    daemon.daemon.service.clock = daemon.daemon.engine.clock = lambda: at
    suite.telegram.faults.inject("permanent", count=1, target=CHAT)
    assert log_of(await deliver(daemon, ann)) == [("telegram", "failed"), ("email", "delivered")]
    at = NOW
    assert log_of(await deliver(daemon, ann)) == [("telegram", "delivered")]
    at = NOW - timedelta(minutes=61)  # before the window: not in the series
    await deliver(daemon, ann)

    at = NOW
    health = await daemon.call("health")
    telegram, email, sms = health["telegram"], health["email"], health["sms"]
    assert telegram["series"]["start"] == "2030-01-15T08:31:00.000+00:00" and telegram["series"]["step_s"] == 60
    assert len(telegram["series"]["delivered"]) == 60
    assert nonzero(telegram["series"]) == {("failed", 49): 1, ("delivered", 59): 1}
    assert nonzero(email["series"]) == {("delivered", 49): 1}
    assert nonzero(sms["series"]) == {} and len(sms["series"]["failed"]) == 60
    assert sorted(sms["series"]) == ["delivered", "failed", "interrupted", "retry", "skipped", "start", "step_s",
                                     "unacknowledged", "undelivered"]
    assert telegram["latency_ms"] == {"p50": 0.0, "p95": 0.0, "samples": 2}  # a frozen clock: no time passes
    assert sms["latency_ms"] == {"p50": None, "p95": None, "samples": 0}


async def test_latency_percentiles_come_from_the_calls(daemon: RunningDaemon, suite: SimulatorSuite) -> None:
    ann = await add_ann(daemon, telegram_chat_id=None)
    suite.smtp.faults.inject("latency", count=1, target=EMAIL, delay=0.3)
    for _ in range(4):
        assert log_of(await deliver(daemon, ann)) == [("telegram", "skipped"), ("email", "delivered")]
    email = (await daemon.call("health"))["email"]
    assert email["latency_ms"]["samples"] == 4  # skipped attempts make no call: not counted
    assert email["latency_ms"]["p95"] >= 300 and email["latency_ms"]["p50"] < 300
    assert sum(email["series"]["delivered"]) == 4 and email["delivered"] == 4
    assert sum((await daemon.call("health"))["telegram"]["series"]["skipped"]) == 4


def nonzero(series: dict[str, object]) -> dict[tuple[str, int], int]:
    return {(outcome, i): n for outcome, counts in series.items() if isinstance(counts, list)
            for i, n in enumerate(counts) if n}
