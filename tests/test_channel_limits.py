"""SMTP and SMS get a configurable rate and concurrency, like Telegram's pacing."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime
from pathlib import Path

import pytest

from daemon.channels.sms import SmsChannel
from daemon.config import SmsConfig
from daemon.core.channel import OutgoingMessage
from daemon.core.models import Recipient
from daemon.core.ratelimit import Limit, MemoryRateLimits, Pacer
from daemon.simulators.sms import SmsSimulator
from daemon.simulators.suite import SimulatorSuite
from tests.conftest import make_config, start_daemon, stop_daemon
from tests.test_delivery import CHAT
from tests.test_pacing import FakeClock


async def test_a_channel_rate_limiter_spaces_every_send_by_its_rate() -> None:
    clock = FakeClock()
    rate = Pacer(MemoryRateLimits(clock), Limit("sms", 4.0), sleep=clock.sleep)
    start = clock.now
    times = []
    for _ in range(5):
        await rate.acquire()
        times.append(round(clock.now - start, 3))
    assert times == [0.0, 0.25, 0.5, 0.75, 1.0]


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


async def test_pacing_happens_before_the_attempt_starts_so_its_timing_is_the_provider_call(
    short_tmp: Path,
) -> None:
    async with SimulatorSuite() as suite:
        sections = suite.config_sections()
        sections["telegram"].update(rate_per_chat=5.0)  # one message per 0.2 s to a chat
        running = await start_daemon(make_config(short_tmp, **sections))
        try:
            await running.call("recipient.add", name="Ann", telegram_chat_id=CHAT)
            sent = [await running.call("send", recipient_id=1, message=f"m{i}") for i in range(3)]
            finals = [await running.wait_final(n["id"]) for n in sent]
        finally:
            await stop_daemon(running)
    attempts = [n["attempts"][0] for n in finals]
    starts = sorted(datetime.fromisoformat(a["started_at"]) for a in attempts)
    assert all((b - a).total_seconds() >= 0.19 for a, b in itertools.pairwise(starts))  # paced
    assert all(a["duration_ms"] < 180 for a in attempts)  # and the wait is not in the attempt
