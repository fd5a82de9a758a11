"""The bot's handlers: thin calls into ``daemon.api.service``; what the user reads is in ``bot.texts``.

    /start <token>       redeem an opt-in link (refusals change nothing); also clears "blocked"
    /start               hello, or how to get linked
    /stop, /resume       opt out of / back into Telegram delivery
    /status, /help
    my_chat_member       kicked -> blocked (later notifications skip Telegram), member -> unblocked
    "Got it" button      acknowledge the notification: no further channel is tried

The dispatcher injects ``service`` (its workflow data) into every handler.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable
from typing import Any

from aiogram import F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import KICKED, MEMBER, ChatMemberUpdatedFilter, Command, CommandObject, CommandStart
from aiogram.types import CallbackQuery, ChatMemberUpdated, ErrorEvent, Message

from bot import texts
from bot.links import is_start_payload
from daemon.api.requests import INT64_MAX
from daemon.api.service import Service
from daemon.channels.telegram import ACK_PREFIX
from daemon.core.errors import ValidationError
from daemon.core.store import AckOutcome, LinkOutcome, LinkRedemption

log = logging.getLogger(__name__)

_ACK_ID = re.compile(r"[1-9][0-9]{0,18}")
SORRY = "Sorry, something went wrong on my side and nothing changed. Please try again in a minute."

_ACK_ANSWERS = {
    AckOutcome.ACKNOWLEDGED: texts.ACK_DONE,
    AckOutcome.ALREADY: texts.ACK_ALREADY,
    AckOutcome.CLOSED: texts.ACK_CLOSED,
    AckOutcome.NOT_FOUND: texts.ACK_UNKNOWN,
}


def build_router() -> Router:
    """A fresh router (a router attaches to one dispatcher only, and the bot may be restarted)."""
    router = Router(name="failover-notify")
    router.message.register(start_with_token, CommandStart(deep_link=True))  # before the plain /start
    router.message.register(start, CommandStart())
    router.message.register(stop, Command("stop"))
    router.message.register(resume, Command("resume"))
    router.message.register(status, Command("status"))
    router.message.register(quiet, Command("quiet"))
    router.message.register(timezone, Command("timezone"))
    router.message.register(help_, Command("help"))
    router.message.register(anything_else, F.chat.type == "private")
    router.my_chat_member.register(blocked, ChatMemberUpdatedFilter(member_status_changed=KICKED))
    router.my_chat_member.register(unblocked, ChatMemberUpdatedFilter(member_status_changed=MEMBER))
    router.callback_query.register(acknowledge, F.data.startswith(ACK_PREFIX))
    return router


async def start_with_token(message: Message, command: CommandObject, service: Service) -> None:
    token = command.args or ""
    if is_start_payload(token):
        redemption = await service.redeem_link(token, message.chat.id)
        recipient_id = redemption.recipient.id if redemption.recipient is not None else None
        log.info("Telegram chat %d opened a link (recipient %s): %s", message.chat.id, recipient_id,
                 redemption.outcome)
        reply = _redemption_text(redemption)
    else:
        reply = texts.TOKEN_UNKNOWN
    await service.set_telegram_blocked(message.chat.id, False)  # they are talking to us: not blocked
    await message.answer(reply)


def _redemption_text(redemption: LinkRedemption) -> str:
    name = redemption.recipient.name if redemption.recipient is not None else "?"
    if redemption.outcome is LinkOutcome.LINKED:
        return texts.LINKED.format(name=name)
    if redemption.outcome is LinkOutcome.ALREADY_LINKED:
        return texts.ALREADY_LINKED.format(name=name)
    if redemption.outcome is LinkOutcome.CHAT_TAKEN:
        holder = redemption.holder.name if redemption.holder is not None else "another recipient"
        return texts.CHAT_TAKEN.format(holder=holder, name=name)
    if redemption.outcome is LinkOutcome.USED:
        return texts.TOKEN_USED
    if redemption.outcome is LinkOutcome.EXPIRED:
        return texts.TOKEN_EXPIRED
    return texts.TOKEN_UNKNOWN


async def start(message: Message, service: Service) -> None:
    recipient = await service.set_telegram_blocked(message.chat.id, False)
    if recipient is None:
        await message.answer(texts.WELCOME)
    else:
        await message.answer(texts.HELLO_AGAIN.format(name=recipient.name, state=texts.telegram_state(recipient)))


async def stop(message: Message, service: Service) -> None:
    recipient, changed = await service.set_telegram_opt_out(message.chat.id, True)
    if recipient is None:
        await message.answer(texts.NOT_LINKED)
    else:
        if changed:
            log.info("Telegram chat %d (recipient %d) opted out of Telegram", message.chat.id, recipient.id)
        await message.answer(texts.STOPPED if changed else texts.ALREADY_STOPPED)


async def resume(message: Message, service: Service) -> None:
    recipient, changed = await service.set_telegram_opt_out(message.chat.id, False)
    if recipient is None:
        await message.answer(texts.NOT_LINKED)
        return
    await service.set_telegram_blocked(message.chat.id, False)
    if changed:
        log.info("Telegram chat %d (recipient %d) opted back into Telegram", message.chat.id, recipient.id)
    await message.answer(texts.RESUMED if changed else texts.ALREADY_RESUMED)


async def status(message: Message, service: Service) -> None:
    recipient = await service.recipient_for_chat(message.chat.id)
    await message.answer(texts.NOT_LINKED if recipient is None else texts.status(recipient))


async def quiet(message: Message, command: CommandObject, service: Service) -> None:
    """``/quiet 22:00-07:00`` or ``/quiet off``: the person sets their own quiet hours."""
    await _own_setting(message, service, "quiet_hours", command.args)


async def timezone(message: Message, command: CommandObject, service: Service) -> None:
    """``/timezone Europe/Moscow``: the clock the quiet hours are read on."""
    await _own_setting(message, service, "timezone", command.args)


async def _own_setting(message: Message, service: Service, field: str, args: str | None) -> None:
    if not args or not args.strip():
        await message.answer(texts.QUIET_USAGE if field == "quiet_hours" else texts.TIMEZONE_USAGE)
        return
    try:
        recipient = await service.set_own_quiet_hours(message.chat.id, field, args.strip())
    except ValidationError as exc:
        await message.answer(texts.SETTING_REFUSED.format(reason=exc.reason))
        return
    if recipient is None:
        await message.answer(texts.NOT_LINKED)
        return
    log.info("Telegram chat %d (recipient %d) set its %s", message.chat.id, recipient.id, field)
    await message.answer(texts.quiet_hours(recipient))


async def help_(message: Message) -> None:
    await message.answer(texts.HELP)


async def anything_else(message: Message) -> None:
    await message.answer(texts.UNKNOWN_MESSAGE)


async def blocked(event: ChatMemberUpdated, service: Service) -> None:
    recipient = await service.set_telegram_blocked(event.chat.id, True)
    if recipient is not None:
        log.info("Telegram chat %d (recipient %d) blocked the bot", event.chat.id, recipient.id)


async def unblocked(event: ChatMemberUpdated, service: Service) -> None:
    recipient = await service.set_telegram_blocked(event.chat.id, False)
    if recipient is not None:
        log.info("Telegram chat %d (recipient %d) unblocked the bot", event.chat.id, recipient.id)


def ack_id(data: str | None) -> int | None:
    """The notification id in ``ack:<id>`` callback data, or None. The data comes from the user's client
    and can be forged: ``ack:²`` (isdigit, yet not int()), or 30 digits (no SQLite INTEGER holds it)."""
    raw = (data or "").removeprefix(ACK_PREFIX)
    if not _ACK_ID.fullmatch(raw) or int(raw) > INT64_MAX:
        return None
    return int(raw)


async def acknowledge(query: CallbackQuery, service: Service) -> None:
    notification_id = ack_id(query.data)
    # an InaccessibleMessage (older than 48 h) still names its chat, but cannot be edited
    chat_id = query.message.chat.id if query.message is not None else query.from_user.id
    message = query.message if isinstance(query.message, Message) else None
    outcome = AckOutcome.NOT_FOUND
    if notification_id is not None:
        outcome = (await service.acknowledge(notification_id, chat_id)).outcome
    if outcome is AckOutcome.ACKNOWLEDGED:
        log.info("notification %s acknowledged from Telegram chat %d", notification_id, chat_id)
    await query.answer(_ACK_ANSWERS[outcome])
    if message is None:
        return
    if outcome in (AckOutcome.ACKNOWLEDGED, AckOutcome.ALREADY):
        if message.text and not message.text.endswith(texts.ACK_SUFFIX):
            # editing the text without reply_markup also removes the button
            await _quietly(message.edit_text(message.text + texts.ACK_SUFFIX), "mark the message acknowledged")
    elif outcome is AckOutcome.CLOSED and message.reply_markup is not None:
        await _quietly(message.edit_reply_markup(reply_markup=None), "remove the button")


async def _quietly(call: Awaitable[Any], what: str) -> None:
    """A cosmetic edit (the message may be too old to edit): the acknowledgement stands either way."""
    try:
        await call
    except TelegramAPIError as exc:
        log.info("could not %s: %s", what, exc.message)


async def on_error(event: ErrorEvent) -> bool:
    """Any handler error: logged, the update dropped, the user told; the bot and the daemon carry on."""
    update = event.update
    log.error("Telegram update %d dropped: %s: %s", update.update_id, type(event.exception).__name__,
              event.exception, exc_info=event.exception)
    message = update.message
    if message is not None:
        try:
            await message.answer(SORRY)
        except Exception as exc:  # telling the user is best effort
            log.debug("could not apologise in chat %d: %s", message.chat.id, exc)
    if update.callback_query is not None:
        try:
            await update.callback_query.answer(SORRY)
        except Exception as exc:  # best effort too
            log.debug("could not answer the callback query: %s", exc)
    return True
