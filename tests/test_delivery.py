"""The failover engine end to end: the real daemon against the loopback simulators."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

from daemon.simulators.suite import SimulatorSuite
from tests.conftest import RunningDaemon

CHAT = 1001
EMAIL = "ann@example.com"
PHONE = "+14155550100"


async def add_ann(daemon: RunningDaemon, **fields: Any) -> int:
    params = {"name": "Ann", "email": EMAIL, "phone": PHONE, "telegram_chat_id": CHAT, **fields}
    params = {k: v for k, v in params.items() if v is not None}
    return int((await daemon.call("recipient.add", **params))["id"])


async def deliver(daemon: RunningDaemon, recipient_id: int, **params: Any) -> dict[str, Any]:
    sent = await daemon.call("send", recipient_id=recipient_id, message=params.pop("message", "hello"), **params)
    return await daemon.wait_final(sent["id"])


def log_of(notification: dict[str, Any]) -> list[tuple[str, str]]:
    return [(a["channel"], a["outcome"]) for a in notification["attempts"]]


async def test_a_clean_delivery_goes_through_telegram_only(daemon: RunningDaemon, suite: SimulatorSuite) -> None:
    ann = await add_ann(daemon)
    final = await deliver(daemon, ann, message="Привет 👋 <b>not html</b>")
    assert final["status"] == "delivered" and log_of(final) == [("telegram", "delivered")]
    assert [m.text for m in suite.telegram.messages_to(CHAT)] == ["Привет 👋 <b>not html</b>"]
    assert final["attempts"][0]["provider_message_id"] == str(suite.telegram.messages[0].message_id)
    assert not suite.smtp.received and not suite.sms.messages


async def test_no_chat_linked_skips_telegram_and_email_delivers(daemon: RunningDaemon, suite: SimulatorSuite) -> None:
    ann = await add_ann(daemon, telegram_chat_id=None)
    final = await deliver(daemon, ann, subject="Disk", message="Disk 91% full 💾")
    assert log_of(final) == [("telegram", "skipped"), ("email", "delivered")]
    assert final["attempts"][0]["error"] == "no Telegram chat linked"
    (mail,) = suite.smtp.received
    assert mail.rcpt_tos == (EMAIL,) and mail.subject == "Disk" and "Disk 91% full 💾" in mail.text


async def test_the_seed_walkthrough_telegram_skipped_email_rejected_sms_delivered(
    daemon: RunningDaemon, suite: SimulatorSuite
) -> None:
    ann = await add_ann(daemon, telegram_chat_id=None)
    suite.smtp.faults.inject("permanent", target=EMAIL)
    final = await deliver(daemon, ann, message="Test message with channel failover")
    assert final["status"] == "delivered"
    assert log_of(final) == [("telegram", "skipped"), ("email", "failed"), ("sms", "delivered")]
    assert "550" in final["attempts"][1]["error"]
    assert [m.body for m in suite.sms.messages] == ["Test message with channel failover"]


async def test_a_blocked_bot_fails_over_at_once_and_marks_the_recipient(
    daemon: RunningDaemon, suite: SimulatorSuite
) -> None:
    ann = await add_ann(daemon)
    suite.telegram.faults.inject("blocked", target=CHAT, count=1)
    final = await deliver(daemon, ann)
    assert log_of(final) == [("telegram", "failed"), ("email", "delivered")]
    assert "blocked" in final["attempts"][0]["error"]
    recipient = await daemon.call("recipient.show", id=ann)
    assert recipient["telegram_state"] == "blocked"
    second = await deliver(daemon, ann)  # no wasted call: Telegram is skipped now
    assert log_of(second) == [("telegram", "skipped"), ("email", "delivered")]
    assert second["attempts"][0]["error"] == "bot blocked by the user"


async def test_chat_not_found_fails_over_to_email(daemon: RunningDaemon, suite: SimulatorSuite) -> None:
    ann = await add_ann(daemon)
    suite.telegram.faults.inject("permanent", target=CHAT)
    final = await deliver(daemon, ann)
    assert log_of(final) == [("telegram", "failed"), ("email", "delivered")]
    assert "chat not found" in final["attempts"][0]["error"]


@pytest.mark.parametrize("kind", ["error", "down"])
async def test_transient_telegram_errors_are_retried_with_backoff_then_delivered(
    daemon: RunningDaemon, suite: SimulatorSuite, kind: str
) -> None:
    ann = await add_ann(daemon)
    suite.telegram.faults.inject(kind, count=2)  # type: ignore[arg-type]
    final = await deliver(daemon, ann)
    assert log_of(final) == [("telegram", "retry"), ("telegram", "retry"), ("telegram", "delivered")]
    first, second, third = final["attempts"]
    # each retry waited at least its backoff (0.05 s, then 0.1 s; +20% jitter at most)
    for attempt, following, low in ((first, second, 0.05), (second, third, 0.1)):
        waited = (datetime.fromisoformat(following["started_at"])
                  - datetime.fromisoformat(attempt["finished_at"])).total_seconds()
        planned = (datetime.fromisoformat(attempt["retry_at"])
                   - datetime.fromisoformat(attempt["finished_at"])).total_seconds()
        assert low <= planned <= low * 1.2 + 0.002
        assert waited >= planned - 0.002


async def test_a_429_waits_the_providers_retry_after(daemon: RunningDaemon, suite: SimulatorSuite) -> None:
    ann = await add_ann(daemon)
    suite.telegram.faults.inject("rate_limit", count=1, retry_after=1)
    final = await deliver(daemon, ann)
    assert log_of(final) == [("telegram", "retry"), ("telegram", "delivered")]
    first = final["attempts"][0]
    planned = (datetime.fromisoformat(first["retry_at"])
               - datetime.fromisoformat(first["finished_at"])).total_seconds()
    assert planned == pytest.approx(1.0, abs=0.01)


async def test_transient_failures_exhaust_the_channel_then_fail_over(
    daemon: RunningDaemon, suite: SimulatorSuite
) -> None:
    ann = await add_ann(daemon)
    suite.telegram.faults.inject("error")
    final = await deliver(daemon, ann)
    assert log_of(final) == [("telegram", "retry"), ("telegram", "retry"), ("telegram", "failed"),
                             ("email", "delivered")]
    assert final["attempts"][2]["error"].endswith("giving up on this channel after 3 tries")


async def test_smtp_4xx_is_retried_and_smtp_5xx_is_not(daemon: RunningDaemon, suite: SimulatorSuite) -> None:
    ann = await add_ann(daemon, telegram_chat_id=None)
    suite.smtp.faults.inject("error", count=1, target=EMAIL)
    final = await deliver(daemon, ann)
    assert log_of(final) == [("telegram", "skipped"), ("email", "retry"), ("email", "delivered")]
    suite.smtp.faults.inject("permanent", count=1, target=EMAIL)
    final = await deliver(daemon, ann)
    assert log_of(final) == [("telegram", "skipped"), ("email", "failed"), ("sms", "delivered")]


async def test_sms_4xx_is_permanent_and_429_and_5xx_are_retried(
    daemon: RunningDaemon, suite: SimulatorSuite
) -> None:
    ann = await add_ann(daemon)
    suite.sms.faults.inject("rate_limit", count=1, retry_after=0.1)
    suite.sms.faults.inject("error", count=1)
    final = await deliver(daemon, ann, chain=["sms"])
    assert log_of(final) == [("sms", "retry"), ("sms", "retry"), ("sms", "delivered")]
    suite.sms.faults.inject("permanent", count=1)
    final = await deliver(daemon, ann, chain=["sms", "email"])
    assert log_of(final) == [("sms", "failed"), ("email", "delivered")]
    assert "21211" in final["attempts"][0]["error"]


async def test_when_every_channel_fails_the_notification_fails(daemon: RunningDaemon, suite: SimulatorSuite) -> None:
    ann = await add_ann(daemon)
    suite.telegram.faults.inject("permanent")
    suite.smtp.faults.inject("permanent")
    suite.sms.faults.inject("permanent")
    final = await deliver(daemon, ann)
    assert final["status"] == "failed"
    assert log_of(final) == [("telegram", "failed"), ("email", "failed"), ("sms", "failed")]


async def test_opted_out_channels_are_skipped_with_the_reason(daemon: RunningDaemon, suite: SimulatorSuite) -> None:
    ann = await add_ann(daemon)
    await daemon.call("recipient.update", id=ann, opt_out=["telegram", "email"])
    final = await deliver(daemon, ann)
    assert log_of(final) == [("telegram", "skipped"), ("email", "skipped"), ("sms", "delivered")]
    assert [a["error"] for a in final["attempts"][:2]] == ["opted out of Telegram", "opted out of email"]


async def test_a_cancelled_notification_is_not_tried_again(daemon: RunningDaemon, suite: SimulatorSuite) -> None:
    ann = await add_ann(daemon)
    suite.telegram.faults.inject("rate_limit", count=1, retry_after=30)
    sent = await daemon.call("send", recipient_id=ann, message="soon cancelled")
    async with asyncio.timeout(5):
        while not (await daemon.call("show", id=sent["id"]))["attempts"]:
            await asyncio.sleep(0.02)
    cancelled = await daemon.call("cancel", id=sent["id"])
    assert cancelled["status"] == "cancelled" and cancelled["next_attempt_at"] is None
    status = await daemon.call("status")
    assert status["queue_depth"] == 0
    assert not suite.telegram.messages


async def test_secrets_never_reach_attempt_errors(daemon: RunningDaemon, suite: SimulatorSuite) -> None:
    ann = await add_ann(daemon)
    await suite.telegram.stop()  # nothing listens: aiogram's network error names the URL with the token
    final = await deliver(daemon, ann)
    errors = " ".join(a["error"] or "" for a in final["attempts"])
    assert "retry" in [a["outcome"] for a in final["attempts"]]
    assert suite.telegram_token not in errors
    assert suite.telegram_token.split(":")[1] not in errors
