"""Bot replies share the Telegram adapter's pacing, so a chat that types fast cannot make us flood.

Telegram allows about one message a second per chat and thirty a second per bot, counting every
message the bot sends: notifications and replies alike. The adapter paces its sends (over its own
HTTP client, without aiogram) through its ``Pacer`` (``daemon.core.ratelimit``) before each one;
``ReplyPacing`` is a request middleware on the bot's aiogram session that charges the same Pacer
for the messages a *bot handler* sends (replies, apologies, edits), so both draw on one per-chat
and one per-bot budget. Requests made outside a handler (getUpdates, setMyCommands) pass straight
through: the runner marks handler context with ``handling_update()``.

A 429 that comes anyway blocks that chat in the Pacer for its ``retry_after`` (notifications wait
too) and the reply is sent once more after the wait.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import EditMessageReplyMarkup, EditMessageText, SendMessage
from aiogram.methods.base import Response, TelegramMethod, TelegramType

from daemon.core.ratelimit import Pacer

if TYPE_CHECKING:
    from aiogram import Bot

PACED_METHODS = (SendMessage, EditMessageText, EditMessageReplyMarkup)
"""The calls that put a message into a chat: what Telegram's flood limits count."""

_IN_HANDLER: ContextVar[bool] = ContextVar("fnotify_bot_handler", default=False)


@contextmanager
def handling_update() -> Iterator[None]:
    """Marks the current task as a bot handler: its Bot API calls are paced by ``ReplyPacing``."""
    token = _IN_HANDLER.set(True)
    try:
        yield
    finally:
        _IN_HANDLER.reset(token)


class ReplyPacing(BaseRequestMiddleware):
    """Charges ``pacer`` (the Telegram adapter's) for each message a bot handler sends to a chat."""

    def __init__(self, pacer: Pacer) -> None:
        self.pacer = pacer

    async def __call__(
        self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot, method: TelegramMethod[TelegramType]
    ) -> Response[TelegramType]:
        chat_id = getattr(method, "chat_id", None)
        sends_to_a_chat = isinstance(method, PACED_METHODS)  # a bool: ``method`` keeps its generic type
        if not _IN_HANDLER.get() or not sends_to_a_chat or chat_id is None:
            return await make_request(bot, method)
        await self.pacer.acquire(chat_id)
        try:
            return await make_request(bot, method)
        except TelegramRetryAfter as exc:
            await self.pacer.block(chat_id, exc.retry_after)  # the chat's notifications wait it out too
        await self.pacer.acquire(chat_id)
        return await make_request(bot, method)
