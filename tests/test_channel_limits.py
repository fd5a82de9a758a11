"""SMTP and SMS get a configurable rate and concurrency, like Telegram's pacing."""

from __future__ import annotations

import asyncio

import pytest

from daemon.channels.base import OutgoingMessage
from daemon.channels.sms import SmsChannel
from daemon.config import SmsConfig
from daemon.models import Recipient
from daemon.ratelimit import RateLimiter, limiter
from daemon.simulators.sms import SmsSimulator
from tests.test_pacing import FakeClock


async def test_a_channel_rate_limiter_spaces_every_send_by_its_rate() -> None:
    clock = FakeClock()
    rate = RateLimiter(4.0, clock=clock, sleep=clock.sleep)
    start = clock.now
    times = []
    for _ in range(5):
        await rate.acquire()
        times.append(round(clock.now - start, 3))
    assert times == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_no_rate_means_no_limiter() -> None:
    assert limiter(None) is None
    assert isinstance(limiter(5.0), RateLimiter)


async def test_sms_concurrency_caps_the_requests_in_flight_at_the_provider() -> None:
    sim = SmsSimulator(account_sid="ACx", auth_token="tok")
    url = await sim.start()
    sim.faults.inject("latency", delay=0.1)
    channel = SmsChannel(SmsConfig(enabled=True, base_url=url, account_sid="ACx", auth_token="tok",
                                   sender="+15005550006", concurrency=2))
    recipient = Recipient(id=1, name="Ann", phone="+14155550100")
    try:
        await asyncio.gather(*(channel.send(OutgoingMessage(i, recipient, f"m{i}")) for i in range(6)))
    finally:
        await channel.close()
        await sim.stop()
    assert len(sim.messages) == 6
    assert sim.connections == 2  # two at a time, each connection reused


@pytest.mark.parametrize("field", ["rate", "concurrency"])
def test_limits_must_be_positive(field: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        SmsConfig(**{field: 0})  # type: ignore[arg-type]
