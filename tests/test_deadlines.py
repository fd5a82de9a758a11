"""Deadlines: no attempt after a notification's deadline; it ends ``expired`` (real daemon, simulators)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.client import RemoteError
from daemon.simulators.suite import SimulatorSuite
from tests.conftest import FakeClock, RunningDaemon, make_config, start_daemon, stop_daemon
from tests.test_delivery import CHAT, add_ann, log_of


async def test_a_notification_whose_retry_falls_after_its_deadline_expires_on_time(
    daemon: RunningDaemon, suite: SimulatorSuite
) -> None:
    ann = await add_ann(daemon)
    suite.telegram.faults.inject("rate_limit", count=1, retry_after=30)  # the retry is due seconds later
    sent = await daemon.call("send", recipient_id=ann, message="code 123456", expires_in=0.5, chain=["telegram", "sms"])
    final = await daemon.wait_final(sent["id"], timeout=5)
    assert final["status"] == "expired"
    assert log_of(final) == [("telegram", "retry"), ("telegram", "skipped")]
    assert "deadline" in final["attempts"][1]["error"] and "not tried" in final["attempts"][1]["error"]
    deadline, expired_at = datetime.fromisoformat(final["deadline"]), datetime.fromisoformat(final["updated_at"])
    assert deadline <= expired_at < deadline + timedelta(seconds=2)
    assert not suite.telegram.messages and not suite.sms.messages


async def test_a_notification_held_past_its_deadline_is_never_sent(short_tmp: Path, suite: SimulatorSuite) -> None:
    clock = FakeClock()
    daemon = await start_daemon(make_config(short_tmp, **suite.config_sections()), clock=clock.now)
    try:
        ann = await add_ann(daemon)
        await daemon.call("pause")
        sent = await daemon.call("send", recipient_id=ann, message="late alert", expires_in=0.2)
        clock.advance(0.4)  # held past the deadline
        await daemon.call("resume")
        final = await daemon.wait_final(sent["id"], timeout=5)
    finally:
        await stop_daemon(daemon)
    assert final["status"] == "expired" and log_of(final) == [("telegram", "skipped")]
    assert not suite.telegram.messages_to(CHAT) and not suite.smtp.received and not suite.sms.messages


async def test_a_notification_within_its_deadline_is_delivered(daemon: RunningDaemon, suite: SimulatorSuite) -> None:
    ann = await add_ann(daemon)
    deadline = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    sent = await daemon.call("send", recipient_id=ann, message="on time", deadline=deadline)
    final = await daemon.wait_final(sent["id"])
    assert final["status"] == "delivered" and log_of(final) == [("telegram", "delivered")]


async def test_a_far_future_deadline_is_refused_and_nothing_is_stored(daemon: RunningDaemon) -> None:
    ann = await add_ann(daemon)
    with pytest.raises(RemoteError) as err:
        await daemon.call("send", recipient_id=ann, message="x", deadline="9999-12-31T23:59:59Z")
    assert err.value.field == "deadline" and "ten years" in str(err.value)
    assert await daemon.call("list") == []
