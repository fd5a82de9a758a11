"""SMS delivery receipts and caps, end to end: the real daemon, the Twilio simulator posting signed status
callbacks to the daemon's HTTP listener on loopback (or serving the Messages GET for ``poll``), SMTP."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from daemon.api.twilio_callback import SIGNATURE_HEADER, twilio_signature
from daemon.core import sms_caps
from daemon.core.sms_caps import SmsCaps, SmsUsage
from daemon.simulators.suite import SimulatorSuite
from tests.conftest import RunningDaemon, make_config, start_daemon, stop_daemon
from tests.test_cli_output import fnotify

PHONE = "+14155550100"
PATH = "/api/v1/twilio/status"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def receipts_config(tmp: Path, suite: SimulatorSuite, port: int, **sms: Any) -> Any:
    sections = suite.config_sections()
    sections["telegram"]["enabled"] = False
    sections["sms"].update({"receipts": "callback", "status_callback_url": f"http://127.0.0.1:{port}{PATH}",
                            "recipient_limits": [], **sms})
    sections["http"] = {"enabled": True, "listen": f"127.0.0.1:{port}", "tokens": ["t0ken-for-the-tests-only"]}
    return make_config(tmp, **sections)


async def send_sms_then_email(daemon: RunningDaemon, text: str = "disk full") -> int:
    ann = await daemon.call("recipient.add", name="Ann", email="ann@example.com", phone=PHONE)
    sent = await daemon.call("send", recipient_id=ann["id"], message=text, chain=["sms", "email"])
    return int(sent["id"])


def log_of(n: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(a["channel"], a["outcome"]) for a in n["attempts"]]


async def test_receipt_undelivered_30005_fails_over_to_email_at_once(short_tmp: Path, suite: SimulatorSuite) -> None:
    port = free_port()
    suite.sms.receipt_for(PHONE, "undelivered", 30005)
    running = await start_daemon(receipts_config(short_tmp, suite, port))
    try:
        final = await running.wait_final(await send_sms_then_email(running))
    finally:
        await stop_daemon(running)
    assert final["status"] == "delivered"
    assert log_of(final) == [("sms", "undelivered"), ("email", "delivered")]
    sms = final["attempts"][0]
    assert sms["error"] == "undelivered 30005: unknown destination handset"
    assert sms["provider_message_id"] == suite.sms.messages[0].sid
    assert len(suite.smtp.received) == 1


async def test_receipt_30003_is_retried_on_sms_then_fails_over(short_tmp: Path, suite: SimulatorSuite) -> None:
    port = free_port()
    suite.sms.receipt_for(PHONE, "undelivered", 30003, times=3)
    running = await start_daemon(receipts_config(short_tmp, suite, port))
    try:
        final = await running.wait_final(await send_sms_then_email(running))
    finally:
        await stop_daemon(running)
    assert log_of(final) == [("sms", "undelivered")] * 3 + [("email", "delivered")]
    assert final["attempts"][0]["retry_at"] is not None
    assert final["attempts"][2]["error"].endswith("giving up on this channel after 3 tries")
    assert len(suite.sms.messages) == 3


async def test_receipt_delivered_and_validity_period_follows_the_deadline(short_tmp: Path,
                                                                         suite: SimulatorSuite) -> None:
    port = free_port()
    running = await start_daemon(receipts_config(short_tmp, suite, port))
    try:
        ann = await running.call("recipient.add", name="Ann", phone=PHONE)
        sent = await running.call("send", recipient_id=ann["id"], message="hi", chain=["sms"], expires_in=600)
        final = await running.wait_final(sent["id"])
    finally:
        await stop_daemon(running)
    assert log_of(final) == [("sms", "delivered")]
    assert final["attempts"][0]["error"].startswith("delivery receipt: delivered at ")
    assert [status for _, status in suite.sms.callbacks] == [200, 200]


async def test_a_forged_signature_gets_403_and_changes_nothing(short_tmp: Path, suite: SimulatorSuite) -> None:
    port = free_port()
    suite.sms.send_callbacks = False
    running = await start_daemon(receipts_config(short_tmp, suite, port))
    url = f"http://127.0.0.1:{port}{PATH}"
    try:
        nid = await send_sms_then_email(running)
        await suite.sms.wait_for_messages(1)
        sid = suite.sms.messages[0].sid
        params = {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "30005"}
        async with aiohttp.ClientSession() as session:
            forged = twilio_signature("not-the-auth-token", url, params)
            async with session.post(url, data=params, headers={SIGNATURE_HEADER: forged}) as response:
                assert response.status == 403
            async with session.post(url, data=params) as response:
                assert response.status == 403
            unknown = {**params, "MessageSid": "SM" + "0" * 32}
            signed = twilio_signature(suite.sms_auth_token, url, unknown)
            async with session.post(url, data=unknown, headers={SIGNATURE_HEADER: signed}) as response:
                assert response.status == 200
        await asyncio.sleep(0.2)  # give a wrongly accepted callback time to act: nothing may change
        n = await running.call("show", id=nid)
        assert n["status"] == "sending"
        assert log_of(n) == [("sms", None)]
        assert suite.smtp.received == []
    finally:
        await stop_daemon(running)


async def test_poll_mode_resolves_receipts_without_an_http_listener(short_tmp: Path, suite: SimulatorSuite) -> None:
    suite.sms.receipt_for(PHONE, "undelivered", 30005)
    sections = suite.config_sections()
    sections["telegram"]["enabled"] = False
    sections["sms"].update({"receipts": "poll", "recipient_limits": []})
    running = await start_daemon(make_config(short_tmp, **sections))
    try:
        nid = await send_sms_then_email(running)
        await suite.sms.wait_for_messages(1)
        for _ in range(100):  # bounded: the attempt is recorded open right after the provider accepted it
            if (await running.daemon.store.pending_receipts()):
                break
            await asyncio.sleep(0.02)
        assert await running.daemon.receipt_poller.poll_once() == 1  # the job's pass, without its 5 s timer
        final = await running.wait_final(nid)
    finally:
        await stop_daemon(running)
    assert log_of(final) == [("sms", "undelivered"), ("email", "delivered")]


async def test_a_receipt_wait_survives_a_restart_and_resolves(short_tmp: Path, suite: SimulatorSuite) -> None:
    port = free_port()
    suite.sms.send_callbacks = False  # Twilio's report comes only after the daemon has restarted
    suite.sms.receipt_for(PHONE, "undelivered", 30006)
    config = receipts_config(short_tmp, suite, port)
    running = await start_daemon(config)
    nid = await send_sms_then_email(running)
    await suite.sms.wait_for_messages(1)
    for _ in range(100):
        if await running.daemon.store.pending_receipts():
            break
        await asyncio.sleep(0.02)
    await stop_daemon(running)
    restarted = await start_daemon(config)
    try:
        assert (await restarted.call("show", id=nid))["status"] == "sending"
        sid = suite.sms.messages[0].sid
        await suite.sms.post_statuses(f"http://127.0.0.1:{port}{PATH}", sid, PHONE, "+15005550006")
        final = await restarted.wait_final(nid)
    finally:
        await stop_daemon(restarted)
    assert log_of(final) == [("sms", "undelivered"), ("email", "delivered")]
    assert final["attempts"][0]["error"] == "undelivered 30006: landline or unreachable carrier"


async def test_a_per_recipient_limit_skips_sms_and_email_delivers(short_tmp: Path, suite: SimulatorSuite) -> None:
    sections = suite.config_sections()
    sections["telegram"]["enabled"] = False
    sections["sms"].update({"recipient_limits": ["2/15m"]})
    running = await start_daemon(make_config(short_tmp, **sections))
    try:
        ann = await running.call("recipient.add", name="Ann", email="ann@example.com", phone=PHONE)
        finals = []
        for i in range(3):
            sent = await running.call("send", recipient_id=ann["id"], message=f"alert {i}", chain=["sms", "email"])
            finals.append(await running.wait_final(sent["id"]))
    finally:
        await stop_daemon(running)
    assert [log_of(n) for n in finals[:2]] == [[("sms", "delivered")]] * 2
    assert log_of(finals[2]) == [("sms", "skipped"), ("email", "delivered")]
    assert finals[2]["attempts"][0]["error"] == "SMS limit 2/15m reached for this recipient"
    assert len(suite.sms.messages) == 2


async def test_the_daily_budget_skips_sms_and_email_delivers(short_tmp: Path, suite: SimulatorSuite) -> None:
    sections = suite.config_sections()
    sections["telegram"]["enabled"] = False
    sections["sms"].update({"recipient_limits": [], "daily_budget": 2})
    running = await start_daemon(make_config(short_tmp, **sections))
    try:
        ann = await running.call("recipient.add", name="Ann", email="ann@example.com", phone=PHONE)
        finals = []
        for i in range(3):
            sent = await running.call("send", recipient_id=ann["id"], message=f"alert {i}", chain=["sms", "email"])
            finals.append(await running.wait_final(sent["id"]))
        status = await running.call("status")
    finally:
        await stop_daemon(running)
    assert log_of(finals[2]) == [("sms", "skipped"), ("email", "delivered")]
    assert finals[2]["attempts"][0]["error"] == "SMS daily budget 2 used up"
    assert status["sms"]["budget_used_today"] == 2


def test_caps_count_messages_per_window_and_segments_per_day() -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    caps = SmsCaps.parse(["5/15m", "11/1h"], 500)
    recent = tuple(now - timedelta(minutes=m) for m in (1, 2, 3, 4, 5))
    assert sms_caps.refusal(caps, SmsUsage(recent, 0), now, 1) == "SMS limit 5/15m reached for this recipient"
    older = tuple(now - timedelta(minutes=16 + m) for m in range(5))
    assert sms_caps.refusal(caps, SmsUsage(older, 0), now, 1) is None  # sliding: 16 min ago is out
    assert sms_caps.refusal(caps, SmsUsage((), 499), now, 2) == "SMS daily budget 500 used up"
    assert sms_caps.crossed_warning(caps, 399, 400) and not sms_caps.crossed_warning(caps, 400, 401)


async def test_cancelling_a_receipt_wait_closes_its_attempt_and_a_late_receipt_changes_nothing(
    short_tmp: Path, suite: SimulatorSuite,
) -> None:
    port = free_port()
    suite.sms.send_callbacks = False  # the carrier's report comes only after the cancel
    suite.sms.receipt_for(PHONE, "undelivered", 30005)
    running = await start_daemon(receipts_config(short_tmp, suite, port))
    finished: list[Any] = []  # what the metrics count and the TUI timeline shows
    running.daemon.events.tap(lambda kind, data: finished.append(data) if kind == "attempt.finished" else None)
    try:
        nid = await send_sms_then_email(running)
        await suite.sms.wait_for_messages(1)
        for _ in range(100):  # bounded: the wait is on disk right after the provider accepted the SMS
            if await running.daemon.store.pending_receipts():
                break
            await asyncio.sleep(0.02)
        cancelled = await running.call("cancel", id=nid)
        assert cancelled["status"] == "cancelled"
        after_cancel = await running.call("show", id=nid)
        assert await running.daemon.store.pending_receipts() == []  # the poller asks about it no more
        sid = suite.sms.messages[0].sid
        await suite.sms.post_statuses(f"http://127.0.0.1:{port}{PATH}", sid, PHONE, "+15005550006")
        assert suite.sms.callbacks == [(sid, 200), (sid, 200)]
        await asyncio.sleep(0.2)  # give a wrongly accepted receipt time to act: nothing may change
        final = await running.call("show", id=nid)
    finally:
        await stop_daemon(running)
    # Twilio accepted it (paid, may reach the phone): the attempt keeps that fact and says why it ended
    assert log_of(after_cancel) == [("sms", "delivered")]
    sms = after_cancel["attempts"][0]
    assert sms["error"] == "notification cancelled while waiting for its delivery receipt"
    assert sms["provider_message_id"] == sid and sms["duration_ms"] is not None
    assert final == after_cancel
    assert finished == [sms]  # the attempt the cancel closed was reported once
    assert suite.smtp.received == []


async def test_fnotify_status_shows_the_budget_used_today_the_caps_and_the_receipts_mode(
    short_tmp: Path, suite: SimulatorSuite,
) -> None:
    sections = suite.config_sections()
    sections["telegram"]["enabled"] = False
    sections["sms"].update({"receipts": "poll", "recipient_limits": ["5/15m", "11/1h", "21/3h"], "daily_budget": 8})
    running = await start_daemon(make_config(short_tmp, **sections))
    try:
        ann = await running.call("recipient.add", name="Ann", phone=PHONE)
        await running.call("send", recipient_id=ann["id"], message="x" * 200, chain=["sms"])  # two segments
        await suite.sms.wait_for_messages(1)
        for _ in range(100):  # bounded: counted once the provider accepted it
            if (await running.call("status"))["sms"]["budget_used_today"]:
                break
            await asyncio.sleep(0.02)
        code, out, err = await fnotify(running.config.daemon.socket_path, "status")
    finally:
        await stop_daemon(running)
    assert code == 0, err
    assert "  sms: 2/8 segments today (25 %); caps 5/15m, 11/1h, 21/3h per recipient; receipts poll\n" in out


async def test_fnotify_status_says_when_there_is_no_daily_budget(bare_daemon: RunningDaemon) -> None:
    code, out, err = await fnotify(bare_daemon.config.daemon.socket_path, "status")
    assert code == 0, err
    assert "  sms: 0 segments today (no budget); caps 5/15m, 11/1h, 21/3h per recipient; receipts off\n" in out
