"""The in-daemon Telegram bot, end to end: the real daemon polls the loopback Telegram simulator, the
simulated user types commands and presses buttons, and the tests read the conversation back."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiogram.utils.backoff import BackoffConfig

from bot import texts
from daemon.client import RemoteError
from daemon.core.events import Subscription
from daemon.simulators.suite import SimulatorSuite
from tests.conftest import RunningDaemon, make_config, start_daemon, stop_daemon
from tests.daemon_process import write_config

ANN_CHAT, BOB_CHAT, EVE_CHAT = 5001, 5002, 5003
WEBHOOK_SECRET = "s3cret-webhook-token-0123456789"


async def start(short_tmp: Path, suite: SimulatorSuite, **telegram: Any) -> RunningDaemon:
    sections = suite.config_sections()
    sections["telegram"].update(telegram)
    running = await start_daemon(make_config(short_tmp, **sections))
    bot = await asyncio.wait_for(running.daemon.wait_bot(), 10)  # it comes up after READY
    assert bot is not None
    await asyncio.wait_for(bot.ready.wait(), 5)
    return running


@pytest.fixture
async def daemon(short_tmp: Path, suite: SimulatorSuite) -> AsyncIterator[RunningDaemon]:
    running = await start(short_tmp, suite)
    yield running
    await stop_daemon(running)


@pytest.fixture
def events(daemon: RunningDaemon) -> Subscription:
    return daemon.daemon.events.subscribe()


# -- helpers -------------------------------------------------------------------------------------------

async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.01)


def chat_texts(suite: SimulatorSuite, chat: int) -> list[str]:
    return [m.text for m in suite.telegram.messages_to(chat)]


async def say(suite: SimulatorSuite, chat: int, text: str) -> str:
    """The user sends ``text``; returns the bot's answer."""
    before = len(suite.telegram.messages_to(chat))
    suite.telegram.user_sends(chat, text)

    async def answered() -> bool:
        return len(suite.telegram.messages_to(chat)) > before

    await eventually(answered)
    return chat_texts(suite, chat)[before]


async def add(daemon: RunningDaemon, name: str, **fields: Any) -> int:
    params = {"email": f"{name.lower()}@example.com", "phone": "+14155550100", **fields}
    return int((await daemon.call("recipient.add", name=name, **params))["id"])


async def linked(daemon: RunningDaemon, suite: SimulatorSuite, name: str, chat: int) -> int:
    """A recipient who opened their link in ``chat``."""
    recipient_id = await add(daemon, name)
    link = await daemon.call("recipient.link", id=recipient_id)
    assert "Linked" in await say(suite, chat, f"/start {link['token']}")
    return recipient_id


async def deliver(daemon: RunningDaemon, recipient_id: int, **params: Any) -> dict[str, Any]:
    sent = await daemon.call("send", recipient_id=recipient_id, message=params.pop("message", "disk full"), **params)
    return await daemon.wait_final(sent["id"])


def log_of(notification: dict[str, Any]) -> list[tuple[str, str]]:
    return [(a["channel"], a["outcome"]) for a in notification["attempts"]]


def kinds(subscription: Subscription) -> list[str]:
    found = []
    while not subscription.queue.empty():
        event = subscription.queue.get_nowait()
        if event is not None:
            found.append(event["event"])
    return found


# -- opt-in by deep link -------------------------------------------------------------------------------

async def test_a_deep_link_links_the_chat_that_opens_it_and_notifications_then_arrive_there(
    daemon: RunningDaemon, suite: SimulatorSuite, events: Subscription
) -> None:
    ann = await add(daemon, "Ann")
    link = await daemon.call("recipient.link", id=ann)
    token = link["token"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{32,64}", token)
    assert link["url"] == f"https://t.me/{suite.telegram.username}?start={token}"
    expires = datetime.fromisoformat(link["expires_at"])
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(hours=24)

    answer = await say(suite, ANN_CHAT, f"/start {token}")
    assert answer.startswith("✅ Linked: this chat now receives the notifications for Ann.")
    recipient = await daemon.call("recipient.show", id=ann)
    assert (recipient["telegram_chat_id"], recipient["telegram_state"]) == (ANN_CHAT, "linked")
    assert "recipient.linked" in kinds(events)

    final = await deliver(daemon, ann, message="Backup finished")
    assert log_of(final) == [("telegram", "delivered")]
    assert chat_texts(suite, ANN_CHAT)[-1] == "Backup finished"
    # the command list went to Telegram at start, so clients offer it
    (commands,) = suite.telegram.commands.values()
    assert [c["command"] for c in commands] == ["start", "status", "stop", "resume", "quiet", "timezone", "help"]


async def test_a_link_works_once_and_a_second_chat_is_refused(daemon: RunningDaemon, suite: SimulatorSuite) -> None:
    ann = await add(daemon, "Ann")
    token = (await daemon.call("recipient.link", id=ann))["token"]
    await say(suite, ANN_CHAT, f"/start {token}")
    assert "already been used" in await say(suite, EVE_CHAT, f"/start {token}")
    assert "already linked to Ann; nothing changed" in await say(suite, ANN_CHAT, f"/start {token}")
    assert (await daemon.call("recipient.show", id=ann))["telegram_chat_id"] == ANN_CHAT


async def test_a_forged_link_is_refused_politely(daemon: RunningDaemon, suite: SimulatorSuite) -> None:
    ann = await add(daemon, "Ann")
    await daemon.call("recipient.link", id=ann)
    for payload in ("forged-token-000000000000000000000", "x" * 64, "not/a:token", "y" * 65):
        assert "I don't recognise this link, so nothing changed" in await say(suite, EVE_CHAT, f"/start {payload}")
    assert (await daemon.call("recipient.show", id=ann))["telegram_state"] == "not linked"


async def test_an_expired_link_is_refused(short_tmp: Path, suite: SimulatorSuite) -> None:
    daemon = await start(short_tmp, suite, link_ttl=0.05)
    try:
        ann = await add(daemon, "Ann")
        token = (await daemon.call("recipient.link", id=ann))["token"]
        await asyncio.sleep(0.1)
        assert "this link has expired, so nothing changed" in await say(suite, ANN_CHAT, f"/start {token}")
        assert (await daemon.call("recipient.show", id=ann))["telegram_chat_id"] is None
    finally:
        await stop_daemon(daemon)


async def test_a_chat_linked_to_another_recipient_is_not_moved(daemon: RunningDaemon, suite: SimulatorSuite) -> None:
    await linked(daemon, suite, "Ann", ANN_CHAT)
    bob = await add(daemon, "Bob")
    token = (await daemon.call("recipient.link", id=bob))["token"]
    answer = await say(suite, ANN_CHAT, f"/start {token}")
    assert answer.startswith("This chat is already linked to Ann, so I did not link it to Bob")
    assert (await daemon.call("recipient.show", id=bob))["telegram_chat_id"] is None
    # the refused link is still good for Bob's own chat
    assert "for Bob" in await say(suite, BOB_CHAT, f"/start {token}")


async def test_start_without_a_link_explains_how_to_get_one(daemon: RunningDaemon, suite: SimulatorSuite) -> None:
    answer = await say(suite, EVE_CHAT, "/start")
    assert "ask your operator for a personal link" in answer
    assert "I only understand commands" in await say(suite, EVE_CHAT, "hello?")


# -- commands ------------------------------------------------------------------------------------------

async def test_stop_skips_telegram_with_the_reason_and_resume_brings_it_back(
    daemon: RunningDaemon, suite: SimulatorSuite, events: Subscription
) -> None:
    ann = await linked(daemon, suite, "Ann", ANN_CHAT)
    assert (await say(suite, ANN_CHAT, "/stop")).startswith("🔕 Paused")
    assert (await daemon.call("recipient.show", id=ann))["telegram_state"] == "opted out"
    final = await deliver(daemon, ann, message="server down")
    assert log_of(final) == [("telegram", "skipped"), ("email", "delivered")]
    assert final["attempts"][0]["error"] == "opted out of Telegram"
    assert "already paused" in await say(suite, ANN_CHAT, "/stop")

    assert (await say(suite, ANN_CHAT, "/resume")).startswith("🔔 Back on")
    final = await deliver(daemon, ann, message="server up")
    assert log_of(final) == [("telegram", "delivered")]
    assert [k for k in kinds(events) if k.startswith("recipient.opted")] == ["recipient.opted_out",
                                                                            "recipient.opted_in"]


async def test_status_and_help_describe_the_chat(daemon: RunningDaemon, suite: SimulatorSuite) -> None:
    assert "not linked to anyone yet" in await say(suite, EVE_CHAT, "/status")
    ann = await linked(daemon, suite, "Ann", ANN_CHAT)
    await daemon.call("recipient.update", id=ann, opt_out=["sms"])
    assert await say(suite, ANN_CHAT, "/status") == (
        f"This chat is linked to Ann (recipient {ann}).\nTelegram: on\nEmail: on\nSMS: off (opted out)"
    )
    assert "/stop - pause notifications on Telegram" in await say(suite, ANN_CHAT, "/help")


async def test_a_user_who_blocks_the_bot_is_skipped_until_they_come_back(
    daemon: RunningDaemon, suite: SimulatorSuite, events: Subscription
) -> None:
    ann = await linked(daemon, suite, "Ann", ANN_CHAT)

    async def state_is(expected: str) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return bool((await daemon.call("recipient.show", id=ann))["telegram_state"] == expected)
        return check

    suite.telegram.member_status(ANN_CHAT, "kicked")
    await eventually(await state_is("blocked"))
    final = await deliver(daemon, ann)
    assert log_of(final) == [("telegram", "skipped"), ("email", "delivered")]
    assert final["attempts"][0]["error"] == "bot blocked by the user"

    suite.telegram.member_status(ANN_CHAT, "member")
    await eventually(await state_is("linked"))
    # a 403 on send marks the recipient too; /start clears it
    suite.telegram.faults.inject("blocked", target=ANN_CHAT, count=1)
    assert log_of(await deliver(daemon, ann)) == [("telegram", "failed"), ("email", "delivered")]
    assert (await daemon.call("recipient.show", id=ann))["telegram_state"] == "blocked"
    assert "Hello again, Ann. Telegram: on" in await say(suite, ANN_CHAT, "/start")
    assert log_of(await deliver(daemon, ann)) == [("telegram", "delivered")]
    assert [k for k in kinds(events) if k in ("recipient.blocked", "recipient.unblocked")] == [
        "recipient.blocked", "recipient.unblocked", "recipient.blocked", "recipient.unblocked"]


async def test_a_failing_handler_drops_the_update_and_the_bot_carries_on(
    daemon: RunningDaemon, suite: SimulatorSuite, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(chat_id: int) -> None:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(daemon.daemon.service, "recipient_for_chat", broken)
    assert "something went wrong on my side" in await say(suite, ANN_CHAT, "/status")
    assert "Telegram update" in caplog.text and "database on fire" in caplog.text
    assert "/help - this message" in await say(suite, ANN_CHAT, "/help")


async def test_links_need_telegram_enabled(bare_daemon: RunningDaemon) -> None:
    await bare_daemon.call("recipient.add", name="Ann")
    with pytest.raises(RemoteError, match=r"set \[telegram\] enabled = true") as err:
        await bare_daemon.call("recipient.link", id=1)
    assert err.value.code == "unsupported"


# -- acknowledgement -----------------------------------------------------------------------------------

async def test_an_unacknowledged_notification_escalates_to_email(daemon: RunningDaemon, suite: SimulatorSuite) -> None:
    ann = await linked(daemon, suite, "Ann", ANN_CHAT)
    final = await deliver(daemon, ann, message="db-1 is down", ack_timeout=0.3)
    assert final["status"] == "delivered"
    assert log_of(final) == [("telegram", "delivered"), ("telegram", "unacknowledged"), ("email", "delivered")]
    delivered, unacked, _ = final["attempts"]
    waited = datetime.fromisoformat(unacked["finished_at"]) - datetime.fromisoformat(delivered["finished_at"])
    assert waited >= timedelta(seconds=0.3)
    assert unacked["error"] == "not acknowledged within 0.3 s"
    (message,) = [m for m in suite.telegram.messages_to(ANN_CHAT) if m.text == "db-1 is down"]
    assert message.callback_data == [f"ack:{final['id']}"]
    assert [mail.text.strip() for mail in suite.smtp.received] == ["db-1 is down"]


async def test_got_it_acknowledges_edits_the_message_and_stops_the_chain(
    daemon: RunningDaemon, suite: SimulatorSuite
) -> None:
    ann = await linked(daemon, suite, "Ann", ANN_CHAT)
    sent = await daemon.call("send", recipient_id=ann, message="db-1 is down", ack_timeout=5)
    await suite.telegram.wait_for_messages(2)
    message = suite.telegram.messages_to(ANN_CHAT)[-1]
    suite.telegram.press_button(ANN_CHAT, message.message_id, f"ack:{sent['id']}")
    final = await daemon.wait_final(sent["id"], timeout=3)
    assert final["status"] == "acknowledged" and log_of(final) == [("telegram", "delivered")]

    async def edited() -> bool:
        return suite.telegram.messages_to(ANN_CHAT)[-1].edit_date is not None

    await eventually(edited)
    edited_message = suite.telegram.messages_to(ANN_CHAT)[-1]
    assert edited_message.text == "db-1 is down\n\n✅ Acknowledged" and edited_message.reply_markup is None
    assert suite.telegram.callback_answers[-1]["text"].startswith("✅ Acknowledged")
    await asyncio.sleep(0.1)
    assert not suite.smtp.received


async def test_another_chat_cannot_acknowledge(daemon: RunningDaemon, suite: SimulatorSuite) -> None:
    ann = await linked(daemon, suite, "Ann", ANN_CHAT)
    await linked(daemon, suite, "Eve", EVE_CHAT)
    sent = await daemon.call("send", recipient_id=ann, message="for Ann only", ack_timeout=5)
    await suite.telegram.wait_for_messages(3)
    eves_message = suite.telegram.messages_to(EVE_CHAT)[-1]  # Eve forges the callback data
    suite.telegram.press_button(EVE_CHAT, eves_message.message_id, f"ack:{sent['id']}")

    async def answered() -> bool:
        return bool(suite.telegram.callback_answers)

    await eventually(answered)
    assert "does not belong to a notification of this chat" in suite.telegram.callback_answers[-1]["text"]
    assert (await daemon.call("show", id=sent["id"]))["status"] == "sending"


async def test_the_ack_timer_survives_a_restart(short_tmp: Path, suite: SimulatorSuite) -> None:
    daemon = await start(short_tmp, suite)
    ann = await linked(daemon, suite, "Ann", ANN_CHAT)
    sent = await daemon.call("send", recipient_id=ann, message="db-1 is down", ack_timeout=1.0)
    await suite.telegram.wait_for_messages(2)
    stopping = time.monotonic()
    await stop_daemon(daemon)
    assert time.monotonic() - stopping < 1.0, "stopping must not wait for the long poll"
    assert not suite.smtp.received

    daemon = await start(short_tmp, suite)
    try:
        final = await daemon.wait_final(sent["id"], timeout=5)
        assert log_of(final) == [("telegram", "delivered"), ("telegram", "unacknowledged"), ("email", "delivered")]
        # the /start handled before the restart was confirmed to Telegram: not answered twice
        assert sum("Linked" in text for text in chat_texts(suite, ANN_CHAT)) == 1
    finally:
        await stop_daemon(daemon)


# -- resilience ----------------------------------------------------------------------------------------

async def test_the_bot_waits_out_telegram_outages_and_the_daemon_serves_meanwhile(
    short_tmp: Path, suite: SimulatorSuite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.runner.SETUP_RETRY", (0.05, 0.1))
    monkeypatch.setattr("bot.runner.POLL_BACKOFF", BackoffConfig(min_delay=0.05, max_delay=0.1, factor=1.5,
                                                                  jitter=0.1))
    port = int(suite.telegram_url.rsplit(":", 1)[1])
    await suite.telegram.stop()
    daemon = await start_daemon(make_config(short_tmp, **suite.config_sections()))
    try:
        ann = await add(daemon, "Ann")
        with pytest.raises(RemoteError, match=r"cannot learn the bot's username from Telegram \(getMe\)"):
            await daemon.call("recipient.link", id=ann)
        bot = await asyncio.wait_for(daemon.daemon.wait_bot(), 10)
        assert bot is not None and not bot.ready.is_set()

        await suite.telegram.start("127.0.0.1", port)
        await asyncio.wait_for(bot.ready.wait(), 5)
        token = (await daemon.call("recipient.link", id=ann))["token"]
        assert "Linked" in await say(suite, ANN_CHAT, f"/start {token}")

        await suite.telegram.stop()  # while polling: aiogram backs off and resumes
        await asyncio.sleep(0.2)
        await suite.telegram.start("127.0.0.1", port)
        assert "/help - this message" in await say(suite, ANN_CHAT, "/help")
    finally:
        await stop_daemon(daemon)


# -- webhook mode, reload ------------------------------------------------------------------------------

async def test_webhook_mode_refuses_a_wrong_secret_and_serves_the_right_one(
    short_tmp: Path, suite: SimulatorSuite
) -> None:
    daemon = await start(short_tmp, suite, mode="webhook", webhook_url="https://bot.example.test/tg/hook",
                         webhook_listen="127.0.0.1:0", webhook_secret=WEBHOOK_SECRET)
    try:
        assert suite.telegram.webhook["url"] == "https://bot.example.test/tg/hook"
        assert suite.telegram.webhook["secret_token"] == WEBHOOK_SECRET
        ann = await add(daemon, "Ann")
        token = (await daemon.call("recipient.link", id=ann))["token"]
        update = {"update_id": 1, "message": {
            "message_id": 1, "date": int(time.time()), "text": f"/start {token}",
            "chat": {"id": ANN_CHAT, "type": "private", "first_name": "Ann"},
            "from": {"id": ANN_CHAT, "is_bot": False, "first_name": "Ann"},
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}]}}
        assert daemon.daemon.bot is not None and daemon.daemon.bot.webhook_address is not None
        host, port = daemon.daemon.bot.webhook_address
        url = f"http://{host}:{port}/tg/hook"
        async with aiohttp.ClientSession() as http:
            for secret in (None, "wrong-secret-0123456789"):
                headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
                async with http.post(url, json=update, headers=headers) as response:
                    assert response.status == 401
            await asyncio.sleep(0.1)
            assert (await daemon.call("recipient.show", id=ann))["telegram_chat_id"] is None
            async with http.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}) as ok:
                assert ok.status == 200

        async def answered() -> bool:
            return bool(suite.telegram.messages_to(ANN_CHAT))

        await eventually(answered)
        assert chat_texts(suite, ANN_CHAT)[0].startswith("✅ Linked")
        assert "getUpdates" not in suite.telegram.requests
    finally:
        await stop_daemon(daemon)


async def test_a_reload_that_changes_telegram_settings_moves_the_bot_onto_the_new_adapter(
    short_tmp: Path, suite: SimulatorSuite
) -> None:
    from daemon.config import load_config

    sections = {**suite.config_sections(), "retry": {"backoff_initial": 0.05, "backoff_max": 0.2}}
    path = write_config(short_tmp / "fnotify.toml", short_tmp, sections)
    daemon = await start_daemon(load_config(path))
    try:
        first = await asyncio.wait_for(daemon.daemon.wait_bot(), 10)
        assert first is not None
        await asyncio.wait_for(first.ready.wait(), 5)
        ann = await linked(daemon, suite, "Ann", ANN_CHAT)
        sections["telegram"]["link_ttl"] = 60
        write_config(path, short_tmp, sections)
        daemon.daemon.reload()
        second = await asyncio.wait_for(daemon.daemon.wait_bot(), 10)
        links = daemon.daemon.service.links
        assert second is not None and second is not first and links is not None and links.ttl == 60
        await asyncio.wait_for(second.ready.wait(), 5)
        assert "Telegram: on" in await say(suite, ANN_CHAT, "/status")
        assert sum("Linked" in text for text in chat_texts(suite, ANN_CHAT)) == 1  # nothing replayed
        assert log_of(await deliver(daemon, ann)) == [("telegram", "delivered")]
    finally:
        await stop_daemon(daemon)


@pytest.mark.parametrize("forged", ["ack:²", "ack:" + "9" * 30, "ack:0", "ack:-1", "ack:", "ack:1 ", "ack:٣"])
async def test_forged_ack_data_is_answered_as_unknown_and_changes_nothing(
    daemon: RunningDaemon, suite: SimulatorSuite, caplog: pytest.LogCaptureFixture, forged: str
) -> None:
    ann = await linked(daemon, suite, "Ann", ANN_CHAT)
    sent = await daemon.call("send", recipient_id=ann, message="for Ann", ack_timeout=5)
    await suite.telegram.wait_for_messages(2)
    suite.telegram.press_button(ANN_CHAT, suite.telegram.messages_to(ANN_CHAT)[-1].message_id, forged)

    async def answered() -> bool:
        return bool(suite.telegram.callback_answers)

    await eventually(answered)
    assert suite.telegram.callback_answers[-1]["text"] == texts.ACK_UNKNOWN  # not the "went wrong" apology
    assert "Telegram update" not in caplog.text  # no handler error
    assert (await daemon.call("show", id=sent["id"]))["status"] == "sending"


async def test_quiet_and_timezone_set_the_persons_own_quiet_hours_and_hold_what_is_not_urgent(
    daemon: RunningDaemon, suite: SimulatorSuite
) -> None:
    assert await say(suite, EVE_CHAT, "/quiet 22:00-07:00") == texts.NOT_LINKED
    ann = await linked(daemon, suite, "Ann", ANN_CHAT)
    assert "Europe/Moscow" in await say(suite, ANN_CHAT, "/timezone Europe/Moscow")
    # a window around the present moment in Moscow, so the next send comes due inside it
    moscow_now = datetime.now(UTC) + timedelta(hours=3)
    window = f"{moscow_now - timedelta(hours=1):%H:%M}-{moscow_now + timedelta(hours=1):%H:%M}"
    assert (await say(suite, ANN_CHAT, f"/quiet {window}")).startswith(f"🌙 Quiet hours {window} (Europe/Moscow)")
    shown = await daemon.call("recipient.show", id=ann)
    assert (shown["timezone"], shown["quiet_hours"]) == ("Europe/Moscow", window)
    assert f"Quiet hours: {window} (Europe/Moscow)" in await say(suite, ANN_CHAT, "/status")

    refused = await say(suite, ANN_CHAT, "/quiet 25:00-07:00")
    assert refused.startswith("Sorry, that did not work, so nothing changed") and "hours run 00..23" in refused
    assert "unknown time zone 'Mars/Base'" in await say(suite, ANN_CHAT, "/timezone Mars/Base")
    assert (await daemon.call("recipient.show", id=ann))["quiet_hours"] == window  # nothing lost

    before = len(suite.telegram.messages_to(ANN_CHAT))
    held = await daemon.call("send", recipient_id=ann, message="nightly report")

    async def is_held() -> bool:
        return (await daemon.call("show", id=held["id"]))["status"] == "held"

    await eventually(is_held)
    entry = (await daemon.call("show", id=held["id"]))["attempts"][0]
    assert entry["outcome"] == "skipped"
    assert entry["error"] == f"quiet hours until {window[-5:]} Europe/Moscow"
    urgent = await deliver(daemon, ann, message="db-1 is down", priority="critical")
    assert urgent["status"] == "delivered" and log_of(urgent) == [("telegram", "delivered")]
    assert [m.text for m in suite.telegram.messages_to(ANN_CHAT)[before:]] == ["db-1 is down"]

    assert (await say(suite, ANN_CHAT, "/quiet off")).startswith("🔔 No quiet hours")
    assert (await daemon.call("recipient.show", id=ann))["quiet_hours"] is None
