"""The circuit breaker: a pure state machine on a fake clock, then the real daemon failing over."""

from __future__ import annotations

from pathlib import Path

from daemon.core.breaker import BreakerSettings, BreakerState, CircuitBreaker
from daemon.simulators.suite import SimulatorSuite
from tests.conftest import make_config, start_daemon, stop_daemon
from tests.test_delivery import CHAT, EMAIL, add_ann, deliver, log_of
from tui.model import channel_verdict


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def breaker(threshold: int = 3, cooldown: float = 10.0) -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    return CircuitBreaker(BreakerSettings(threshold, cooldown), clock), clock


def test_a_breaker_opens_after_threshold_consecutive_failures() -> None:
    b, _ = breaker()
    for _ in range(2):
        b.failure()
    assert b.state is BreakerState.CLOSED and b.allows()
    b.failure()
    assert b.state is BreakerState.OPEN and not b.allows()


def test_a_success_resets_the_failure_streak() -> None:
    b, _ = breaker()
    b.failure(), b.failure(), b.success(), b.failure(), b.failure()
    assert b.state is BreakerState.CLOSED


def test_after_the_cooldown_exactly_one_probe_goes_through() -> None:
    b, clock = breaker()
    for _ in range(3):
        b.failure()
    clock.now = 9.9
    assert not b.allows()
    clock.now = 10.0
    assert b.state is BreakerState.HALF_OPEN
    assert b.allows() and b.allows()  # asking claims nothing
    b.begin()  # the probe
    assert not b.allows()


def test_a_successful_probe_closes_the_breaker() -> None:
    b, clock = breaker()
    for _ in range(3):
        b.failure()
    clock.now = 10.0
    b.begin()
    b.success()
    assert b.state is BreakerState.CLOSED and b.allows() and b.failures == 0


def test_a_failed_probe_keeps_the_channel_down_for_another_cooldown() -> None:
    b, clock = breaker()
    for _ in range(3):
        b.failure()
    clock.now = 10.0
    b.begin()
    b.failure()
    assert b.state is BreakerState.OPEN and not b.allows()
    assert b.to_json() == {"state": "open", "consecutive_failures": 4, "probe_in_s": 10.0}
    clock.now = 20.0
    assert b.allows()


def test_a_probe_that_never_reports_back_is_given_up_after_a_cooldown() -> None:
    b, clock = breaker()
    for _ in range(3):
        b.failure()
    clock.now = 10.0
    b.begin()
    clock.now = 19.9
    assert not b.allows()
    clock.now = 20.0
    assert b.allows()


def test_a_threshold_of_zero_never_opens() -> None:
    b, _ = breaker(threshold=0)
    for _ in range(100):
        b.failure()
    assert b.state is BreakerState.CLOSED


def test_the_tui_calls_a_channel_with_an_open_breaker_down() -> None:
    assert channel_verdict({"enabled": True, "delivered": 3, "breaker": {"state": "open"}}) == "down"
    assert channel_verdict({"enabled": True, "delivered": 3, "breaker": {"state": "closed"}}) == "ok"


async def test_a_down_telegram_is_skipped_at_once_and_a_probe_closes_it_again(
    short_tmp: Path, suite: SimulatorSuite
) -> None:
    config = make_config(short_tmp, **suite.config_sections(), breaker={"threshold": 2, "cooldown": 30.0},
                         retry={"attempts_per_channel": 2, "backoff_initial": 0.01, "backoff_max": 0.02})
    clock = Clock()  # the breakers' monotonic clock; retries keep the real wall clock
    daemon = await start_daemon(config, monotonic=clock)
    try:
        ann = await add_ann(daemon)
        suite.telegram.faults.inject("error", count=2, target=CHAT)
        first = await deliver(daemon, ann, message="trips the breaker")
        assert log_of(first) == [("telegram", "retry"), ("telegram", "failed"), ("email", "delivered")]
        health = await daemon.call("health")
        assert health["telegram"]["breaker"]["state"] == "open"
        assert health["email"]["breaker"]["state"] == "closed"

        second = await deliver(daemon, ann, message="fails over without waiting")
        assert log_of(second) == [("telegram", "skipped"), ("email", "delivered")]
        assert second["attempts"][0]["error"] == "channel down"
        assert len(suite.telegram.messages) == 0

        clock.now += 30.0  # the cooldown: the next attempt is the probe, and it succeeds
        third = await deliver(daemon, ann, message="probe")
        assert log_of(third) == [("telegram", "delivered")]
        assert (await daemon.call("health"))["telegram"]["breaker"] == {
            "state": "closed", "consecutive_failures": 0, "probe_in_s": None}
        assert [m.text for m in suite.telegram.messages] == ["probe"]
        assert len(suite.smtp.received) == 2 and suite.smtp.received[0].rcpt_tos == (EMAIL,)
    finally:
        await stop_daemon(daemon)
