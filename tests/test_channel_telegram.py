"""The Telegram adapter against a real TelegramSimulator on 127.0.0.1, and the simulator's Bot API."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramConflictError
from aiohttp import web
from pydantic import SecretStr

from bot.runner import make_bot
from daemon.channels.botapi import BotApi
from daemon.channels.telegram import TelegramChannel, scrub_token
from daemon.config import TelegramConfig
from daemon.core.channel import OutgoingMessage
from daemon.core.errors import ChannelError, ConfigError, PermanentError, TransientError
from daemon.core.models import Channel, Recipient
from daemon.simulators.telegram import TelegramSimulator

TOKEN = "123456:TEST-TOKEN-secret-part-0123456789"
CHAT = 4242

MakeChannel = Callable[..., TelegramChannel]


@pytest.fixture
async def sim() -> AsyncIterator[TelegramSimulator]:
    simulator = TelegramSimulator(token=TOKEN)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def make_channel(sim: TelegramSimulator) -> AsyncIterator[MakeChannel]:
    made: list[TelegramChannel] = []

    def make(token: str = TOKEN, api_base: str | None = None, timeout: float = 5.0) -> TelegramChannel:
        config = TelegramConfig(enabled=True, token=SecretStr(token), api_base=api_base or str(sim.base_url),
                                timeout=timeout)
        made.append(TelegramChannel(config))
        return made[-1]

    yield make
    await asyncio.gather(*(channel.close() for channel in made))  # aiogram's close() sleeps 0.25 s


@pytest.fixture
def channel(make_channel: MakeChannel) -> TelegramChannel:
    return make_channel()


@pytest.fixture
async def bot(sim: TelegramSimulator) -> AsyncIterator[Bot]:
    """The in-daemon bot's own aiogram Bot on the simulator (the channel sends without aiogram)."""
    made = make_bot(TelegramConfig(enabled=True, token=SecretStr(TOKEN), api_base=str(sim.base_url), timeout=5.0))
    yield made
    await made.session.close()


def message(text: str = "Disk 91% full on db-1", *, chat_id: int | None = CHAT, ack: bool = False,
            notification_id: int = 7) -> OutgoingMessage:
    recipient = Recipient(id=1, name="Maria", telegram_chat_id=chat_id)
    return OutgoingMessage(notification_id=notification_id, recipient=recipient, text=text, ack_requested=ack)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# --- delivery ------------------------------------------------------------------------------


async def test_a_delivered_message_returns_its_id_and_arrives_verbatim(
    channel: TelegramChannel, sim: TelegramSimulator
) -> None:
    text = "Диск заполнен на 91% 🚨 — <b>not html</b> *nor markdown* 👩‍💻"
    message_id = await channel.send(message(text))
    [sent] = sim.messages_to(CHAT)
    assert message_id == str(sent.message_id)
    assert sent.text == text
    assert sent.parse_mode is None
    assert sent.reply_markup is None


async def test_message_ids_increase_with_each_send(channel: TelegramChannel) -> None:
    first, second = await channel.send(message()), await channel.send(message())
    assert first is not None and second is not None
    assert int(second) > int(first)


async def test_an_ack_request_adds_one_got_it_button(
    channel: TelegramChannel, sim: TelegramSimulator
) -> None:
    await channel.send(message(ack=True, notification_id=42))
    [sent] = await sim.wait_for_messages(1)
    assert sent.reply_markup == {"inline_keyboard": [[{"text": "✅ Got it", "callback_data": "ack:42"}]]}
    assert sent.callback_data == ["ack:42"]


async def test_check_returns_the_bot_username(channel: TelegramChannel) -> None:
    assert await channel.check() == "@fnotify_test_bot"


async def test_the_bots_own_aiogram_bot_talks_to_the_configured_api_with_no_default_parse_mode(
    channel: TelegramChannel, bot: Bot, sim: TelegramSimulator
) -> None:
    assert channel.name is Channel.TELEGRAM
    assert bot.default.parse_mode is None
    assert bot.session.api.api_url(TOKEN, "getMe") == f"{sim.base_url}/bot{TOKEN}/getMe"
    assert bot.session.timeout == 5.0


# --- error mapping -------------------------------------------------------------------------


async def test_a_rate_limit_is_transient_and_carries_retry_after(
    channel: TelegramChannel, sim: TelegramSimulator
) -> None:
    sim.faults.inject("rate_limit", count=1, retry_after=3)
    with pytest.raises(TransientError) as caught:
        await channel.send(message())
    assert caught.value.retry_after == 3
    assert await channel.send(message()) is not None  # the fault was used up


async def test_a_fractional_retry_after_is_rounded_up_to_whole_seconds(
    channel: TelegramChannel, sim: TelegramSimulator
) -> None:
    sim.faults.inject("rate_limit", retry_after=0.2)
    with pytest.raises(TransientError) as caught:
        await channel.send(message())
    assert caught.value.retry_after == 1


async def test_a_user_who_blocked_the_bot_fails_permanently_marked_blocked(
    channel: TelegramChannel, sim: TelegramSimulator
) -> None:
    sim.faults.inject("blocked", target=CHAT)
    with pytest.raises(PermanentError) as caught:
        await channel.send(message())
    assert caught.value.blocked is True
    assert "blocked" in str(caught.value)


async def test_a_blocked_chat_stays_blocked(channel: TelegramChannel, sim: TelegramSimulator) -> None:
    sim.blocked_chats.add(CHAT)
    for _ in range(2):
        with pytest.raises(PermanentError) as caught:
            await channel.send(message())
        assert caught.value.blocked


async def test_chat_not_found_is_permanent_but_not_blocked(
    channel: TelegramChannel, sim: TelegramSimulator
) -> None:
    sim.faults.inject("permanent", target=CHAT)
    with pytest.raises(PermanentError) as caught:
        await channel.send(message())
    assert caught.value.blocked is False
    assert "chat not found" in str(caught.value)


async def test_an_unknown_chat_is_permanent(channel: TelegramChannel, sim: TelegramSimulator) -> None:
    sim.unknown_chats.add(CHAT)
    with pytest.raises(PermanentError, match="chat not found"):
        await channel.send(message())


async def test_a_fault_for_another_chat_leaves_this_one_alone(
    channel: TelegramChannel, sim: TelegramSimulator
) -> None:
    sim.faults.inject("permanent", target=CHAT + 1)
    assert await channel.send(message()) is not None


async def test_a_server_error_is_transient(channel: TelegramChannel, sim: TelegramSimulator) -> None:
    sim.faults.inject("error", count=1)
    with pytest.raises(TransientError, match="server error"):
        await channel.send(message())


async def test_a_dropped_connection_is_transient(channel: TelegramChannel, sim: TelegramSimulator) -> None:
    sim.faults.inject("down", count=1)
    with pytest.raises(TransientError, match="network error"):
        await channel.send(message())
    assert await channel.send(message()) is not None  # a fresh connection works again


async def test_a_slow_provider_times_out_as_transient(
    make_channel: MakeChannel, sim: TelegramSimulator
) -> None:
    channel = make_channel(timeout=0.2)
    sim.faults.inject("latency", count=1, delay=5)
    with pytest.raises(TransientError):
        await channel.send(message())


async def test_latency_below_the_timeout_still_delivers(
    channel: TelegramChannel, sim: TelegramSimulator
) -> None:
    sim.faults.inject("latency", count=1, delay=0.1)
    assert await channel.send(message()) is not None


async def test_a_rejected_token_is_permanent(make_channel: MakeChannel) -> None:
    channel = make_channel(token="999999:WRONG-token-for-this-bot")
    with pytest.raises(PermanentError, match=r"bot token rejected \(401 Unauthorized\)"):
        await channel.send(message())
    with pytest.raises(PermanentError):
        await channel.check()


async def test_an_unreachable_api_is_transient_for_send_and_check(make_channel: MakeChannel) -> None:
    channel = make_channel(api_base=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(TransientError):
        await channel.send(message())
    with pytest.raises(TransientError):
        await channel.check()


async def test_a_wrong_api_base_path_is_permanent(make_channel: MakeChannel, sim: TelegramSimulator) -> None:
    channel = make_channel(api_base=f"{sim.base_url}/not-the-api")
    with pytest.raises(PermanentError, match="api_base"):
        await channel.check()


async def test_error_texts_never_contain_the_token(make_channel: MakeChannel, sim: TelegramSimulator) -> None:
    wrong = "777777:ANOTHER-secret-token-value-xyz"
    cases: list[tuple[TelegramChannel, Callable[[], object]]] = [
        (make_channel(), lambda: sim.faults.inject("down", count=1)),
        (make_channel(), lambda: sim.faults.inject("error", count=1)),
        (make_channel(), lambda: sim.faults.inject("rate_limit", count=1)),
        (make_channel(), lambda: sim.faults.inject("blocked", count=1)),
        (make_channel(api_base=f"http://127.0.0.1:{closed_port()}"), lambda: None),
        (make_channel(token=wrong), lambda: None),
        (make_channel(timeout=0.1), lambda: sim.faults.inject("latency", count=1, delay=2)),
    ]
    texts = []
    for channel, arrange in cases:
        arrange()
        with pytest.raises(ChannelError) as caught:
            await channel.send(message())
        texts.append(str(caught.value))
    for text in texts:
        assert TOKEN not in text and wrong not in text and "TEST-TOKEN" not in text, text
        assert "/bot" not in text or "/bot[REDACTED]/" in text, text


def test_scrub_token_masks_the_token_and_any_bot_url_segment() -> None:
    text = f"Cannot connect to http://127.0.0.1:1/bot{TOKEN}/sendMessage (token {TOKEN})"
    scrubbed = scrub_token(text, TOKEN)
    assert TOKEN not in scrubbed
    assert scrubbed == "Cannot connect to http://127.0.0.1:1/bot[REDACTED]/sendMessage (token [REDACTED])"
    assert scrub_token("GET /bot1:other-token/getMe", TOKEN) == "GET /bot[REDACTED]/getMe"
    assert scrub_token("nothing secret here", "") == "nothing secret here"


def test_a_missing_or_malformed_token_is_a_config_error_that_does_not_echo_it() -> None:
    with pytest.raises(ConfigError, match="token: required"):
        TelegramChannel(TelegramConfig())
    with pytest.raises(ConfigError, match="not a bot token") as caught:
        TelegramChannel(TelegramConfig(token=SecretStr("not a token with secret bits")))
    assert "secret bits" not in str(caught.value)


async def test_sending_without_a_chat_fails_permanently(channel: TelegramChannel) -> None:
    with pytest.raises(PermanentError, match="no Telegram chat linked"):
        await channel.send(message(chat_id=None))


# --- the simulator's Bot API, as aiogram sees it --------------------------------------------


async def test_an_update_pushed_during_a_long_poll_is_returned_at_once(
    bot: Bot, sim: TelegramSimulator
) -> None:
    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=10))
    await asyncio.sleep(0.1)
    assert not poll.done()
    sim.user_sends(CHAT, "/start LINK-TOKEN", first_name="Maria", username="maria")
    [update] = await asyncio.wait_for(poll, 5)
    assert time.monotonic() - started < 3
    assert update.message is not None and update.message.text == "/start LINK-TOKEN"
    assert update.message.chat.id == CHAT and update.message.chat.type == "private"
    assert update.message.from_user is not None and update.message.from_user.username == "maria"
    [entity] = update.message.entities or []
    assert (entity.type, entity.offset, entity.length) == ("bot_command", 0, len("/start"))


async def test_an_offset_acknowledges_earlier_updates(
    bot: Bot, sim: TelegramSimulator
) -> None:
    sim.user_sends(CHAT, "one")
    sim.user_sends(CHAT, "two")
    updates = await bot.get_updates(timeout=0)
    assert [u.message.text for u in updates if u.message] == ["one", "two"]
    assert updates[0].update_id < updates[1].update_id
    assert len(await bot.get_updates(offset=updates[0].update_id + 1)) == 1
    assert await bot.get_updates(offset=updates[1].update_id + 1) == []
    assert sim.pending_updates == []


async def test_a_long_poll_with_nothing_to_say_waits_out_its_timeout(bot: Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == []
    assert time.monotonic() - started >= 0.9


async def test_stopping_the_simulator_answers_a_pending_long_poll(
    bot: Bot, sim: TelegramSimulator
) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await sim.stop()
    assert await asyncio.wait_for(poll, 5) == []
    assert time.monotonic() - started < 2


async def test_get_updates_honours_limit_and_allowed_updates(
    bot: Bot, sim: TelegramSimulator
) -> None:
    for text in ("a", "b", "c"):
        sim.user_sends(CHAT, text)
    assert len(await bot.get_updates(limit=2)) == 2
    sim.member_status(CHAT, "kicked")
    updates = await bot.get_updates(allowed_updates=["my_chat_member"])
    assert [u.my_chat_member is not None for u in updates] == [True]


async def test_a_newer_long_poll_terminates_the_older_one(bot: Bot) -> None:
    older = asyncio.create_task(bot.get_updates(timeout=10))
    await asyncio.sleep(0.1)
    newer = asyncio.create_task(bot.get_updates(timeout=0))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates"):
        await asyncio.wait_for(older, 5)
    assert await newer == []


async def test_pressing_the_ack_button_reaches_the_bot_as_a_callback_query(
    channel: TelegramChannel, bot: Bot, sim: TelegramSimulator
) -> None:
    message_id = await channel.send(message(ack=True, notification_id=9))
    assert message_id is not None
    sim.press_button(CHAT, int(message_id), "ack:9")
    [update] = await bot.get_updates()
    query = update.callback_query
    assert query is not None and query.data == "ack:9" and query.from_user.id == CHAT
    assert query.message is not None and query.message.message_id == int(message_id)
    assert await bot.answer_callback_query(query.id, text="Acknowledged")
    assert sim.callback_answers[-1]["text"] == "Acknowledged"
    with pytest.raises(TelegramBadRequest, match="query ID is invalid"):
        await bot.answer_callback_query(query.id)  # a query is answered once


async def test_a_kicked_bot_sees_the_member_update_and_then_403s(
    channel: TelegramChannel, bot: Bot, sim: TelegramSimulator
) -> None:
    sim.member_status(CHAT, "kicked")
    [update] = await bot.get_updates()
    assert update.my_chat_member is not None
    assert update.my_chat_member.new_chat_member.status == "kicked"
    with pytest.raises(PermanentError) as caught:
        await channel.send(message())
    assert caught.value.blocked
    sim.member_status(CHAT, "member")
    assert await channel.send(message()) is not None


async def test_editing_a_message_replaces_its_text_and_buttons(
    channel: TelegramChannel, bot: Bot, sim: TelegramSimulator
) -> None:
    message_id = int(await channel.send(message(ack=True)) or 0)
    edited = await bot.edit_message_text(text="Acknowledged ✅", chat_id=CHAT, message_id=message_id)
    assert not isinstance(edited, bool) and edited.edit_date is not None
    [sent] = sim.messages_to(CHAT)
    assert (sent.text, sent.reply_markup) == ("Acknowledged ✅", None)
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(text="Acknowledged ✅", chat_id=CHAT, message_id=message_id)


async def test_commands_and_webhook_round_trip(bot: Bot) -> None:
    from aiogram.types import BotCommand

    assert await bot.set_my_commands([BotCommand(command="start", description="link this chat")])
    assert [c.command for c in await bot.get_my_commands()] == ["start"]
    assert await bot.delete_my_commands()
    assert await bot.get_my_commands() == []
    assert await bot.set_webhook("http://127.0.0.1:8443/telegram")
    assert (await bot.get_webhook_info()).url == "http://127.0.0.1:8443/telegram"
    with pytest.raises(TelegramConflictError, match="webhook is active"):
        await bot.get_updates()
    assert await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""


# --- the simulator's wire format -------------------------------------------------------------


async def post(url: str, **kwargs: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(url, **kwargs) as resp:
        return resp.status, await resp.json()


async def test_errors_have_telegrams_exact_shape(sim: TelegramSimulator) -> None:
    base = f"{sim.base_url}/bot{TOKEN}"
    assert await post(f"{sim.base_url}/bot1:wrong/getMe") == (
        401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
    assert await post(f"{base}/noSuchMethod") == (
        404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"})
    sim.faults.inject("rate_limit", retry_after=5)
    assert await post(f"{base}/sendMessage", json={"chat_id": CHAT, "text": "hi"}) == (
        429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 5",
              "parameters": {"retry_after": 5}})


async def test_parameters_may_come_as_json_form_or_query(sim: TelegramSimulator) -> None:
    base = f"{sim.base_url}/bot{TOKEN}/sendMessage"
    markup = {"inline_keyboard": [[{"text": "ok", "callback_data": "x"}]]}
    assert (await post(base, json={"chat_id": 1, "text": "json", "reply_markup": markup}))[0] == 200
    assert (await post(base, data={"chat_id": "2", "text": "form"}))[0] == 200
    assert (await post(base, params={"chat_id": "3", "text": "query"}))[0] == 200
    assert [(m.chat_id, m.text) for m in sim.messages] == [(1, "json"), (2, "form"), (3, "query")]
    assert sim.messages[0].reply_markup == markup
    status, body = await post(base, data={"chat_id": "4", "text": ""})
    assert (status, body["description"]) == (400, "Bad Request: message text is empty")


@pytest.fixture
async def control(sim: TelegramSimulator) -> AsyncIterator[str]:
    app = web.Application()
    sub = web.Application()
    sub.add_routes(sim.control_routes())
    app.add_subapp("/telegram", sub)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/telegram"
    await runner.cleanup()


async def test_the_control_api_injects_faults_and_user_messages(
    control: str, sim: TelegramSimulator, channel: TelegramChannel
) -> None:
    status, body = await post(f"{control}/faults", json={"kind": "nonsense"})
    assert status == 400 and body["error"].startswith("kind:")
    assert (await post(f"{control}/faults", data="not json"))[0] == 400
    status, body = await post(f"{control}/faults", json={"kind": "error", "count": 1})
    assert (status, body["kind"]) == (201, "error")
    with pytest.raises(TransientError):
        await channel.send(message())
    assert (await post(f"{control}/user_sends", json={"chat_id": CHAT}))[1] == {"error": "text: required"}
    assert (await post(f"{control}/user_sends", json={"chat_id": CHAT, "text": "/start abc"}))[0] == 201
    assert (await post(f"{control}/updates", json={"message": {"text": "raw"}}))[0] == 201
    assert [u["message"]["text"] for u in sim.pending_updates] == ["/start abc", "raw"]
    await channel.send(message("hello"))
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{control}/messages") as resp:
            assert [m["text"] for m in await resp.json()] == ["hello"]
        await channel.send(message("again"))
        async with session.get(f"{control}/messages", params={"last": "1"}) as resp:
            assert [m["text"] for m in await resp.json()] == ["again"]
        async with session.delete(f"{control}/faults") as resp:
            assert resp.status == 200


async def test_the_simulator_refuses_a_non_loopback_address() -> None:
    with pytest.raises(ValueError, match="loopback"):
        await TelegramSimulator().start("0.0.0.0")



async def test_no_more_sends_overlap_than_there_are_connections(sim: TelegramSimulator) -> None:
    # three times as many sends as connections, each held 0.3 s by the simulator: they go in three
    # waves, and none times out waiting for a connection (the wait is not part of the call's timeout)
    connections, delay = 4, 0.3
    api = BotApi(str(sim.base_url), TOKEN, timeout=delay * 2, connections=connections)
    try:
        sim.faults.inject("latency", count=3 * connections, delay=delay)
        began = time.monotonic()
        sends = [api.call("sendMessage", {"chat_id": CHAT, "text": f"m{i}"}) for i in range(3 * connections)]
        assert all(result["message_id"] for result in await asyncio.gather(*sends))
        assert time.monotonic() - began >= 3 * delay
    finally:
        await api.aclose()
