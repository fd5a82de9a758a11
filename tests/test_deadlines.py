"""Deadlines: no attempt after a notification's deadline; it ends ``expired`` (real daemon, simulators)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from daemon.client import RemoteError
from daemon.core.failover import StepKind, clamp_to_deadline, expiry
from daemon.core.models import Outcome
from daemon.simulators.suite import SimulatorSuite
from tests.conftest import RunningDaemon
from tests.test_delivery import CHAT, add_ann, log_of

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_no_deadline_or_a_future_one_does_not_expire() -> None:
    assert expiry(None, NOW, 0, 0) is None
    assert expiry(NOW + timedelta(seconds=1), NOW, 0, 0) is None


def test_a_passed_deadline_expires_at_the_current_position_without_an_attempt() -> None:
    step = expiry(NOW, NOW, 1, 2)
    assert step is not None
    assert (step.kind, step.outcome, step.position, step.tries) == (StepKind.EXPIRED, Outcome.SKIPPED, 1, 2)


def test_a_retry_after_the_deadline_is_due_at_the_deadline() -> None:
    assert clamp_to_deadline(NOW + timedelta(seconds=30), NOW + timedelta(seconds=5)) == NOW + timedelta(seconds=5)
    assert clamp_to_deadline(NOW, NOW + timedelta(seconds=5)) == NOW
    assert clamp_to_deadline(NOW, None) == NOW


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


async def test_a_notification_held_past_its_deadline_is_never_sent(
    daemon: RunningDaemon, suite: SimulatorSuite
) -> None:
    ann = await add_ann(daemon)
    await daemon.call("pause")
    sent = await daemon.call("send", recipient_id=ann, message="late alert", expires_in=0.2)
    await asyncio.sleep(0.4)
    await daemon.call("resume")
    final = await daemon.wait_final(sent["id"], timeout=5)
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
