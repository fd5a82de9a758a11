"""The Telegram channel: one aiogram ``Bot`` sends plain-text messages, with an optional ack button.

This is the only module that maps aiogram's errors (the in-daemon bot reuses ``.bot`` but not the
mapping)::

    TelegramRetryAfter (429)                      TransientError(retry_after=...)
    TelegramForbiddenError (403)                  PermanentError, blocked=True when the user blocked
                                                  the bot, kicked it or was deactivated
    TelegramBadRequest (400), TelegramNotFound    PermanentError (chat not found, text too long...;
    (404), TelegramMigrateToChat,                 a 404 means api_base is wrong: retrying cannot help)
    TelegramEntityTooLarge (413)
    TelegramUnauthorizedError (401)               PermanentError: the token was rejected
    TelegramServerError (5xx), TelegramNetworkError,
    any other TelegramAPIError, an unreadable
    answer, timeouts, aiohttp and OS errors       TransientError

Sends are paced by token buckets (``[telegram] rate_global`` and ``rate_per_chat``, see
``daemon.core.ratelimit``) so the daemon waits instead of provoking 429s. A 429 that comes anyway blocks
that chat for its ``retry_after`` and is raised with ``rate_limited=True``: the engine retries after
the wait without counting a try.

Error texts never contain the bot token: aiogram's network errors may quote the request URL,
which is ``{api_base}/bot<token>/<method>``.
"""

from __future__ import annotations

import re

import aiohttp
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    AiogramError,
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import EditMessageText, GetMe, GetUpdates, SendMessage
from aiogram.methods.base import Response
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.token import TokenValidationError

from daemon.channels.telegram_text import TELEGRAM_MAX, split_message
from daemon.config import TelegramConfig
from daemon.core.channel import OutgoingMessage
from daemon.core.errors import ConfigError, PermanentError, TransientError
from daemon.core.models import Channel, Recipient
from daemon.core.ratelimit import Pacer

# aiogram parametrises Response[...] for every API answer, and pydantic caches parametrised models
# only weakly: with no strong reference the class is rebuilt (schema and all) on each call. Holding
# the ones we use keeps them cached: ~10 % of the daemon's CPU at 600 messages/s (py-spy).
_RESPONSE_TYPES = tuple(
    Response[method.__returning__]  # type: ignore[name-defined]
    for method in (SendMessage, GetMe, GetUpdates, EditMessageText)
)

ACK_BUTTON_TEXT = "✅ Got it"
ACK_PREFIX = "ack:"
MASK = "[REDACTED]"
_BOT_SEGMENT = re.compile(r"/bot[^/\s]*/")
_BLOCKED_MARKERS = ("blocked", "kicked", "deactivated")
# what a Bot API call can raise: aiogram wraps transport errors, but not all of them (session setup)
_RAISED = (AiogramError, aiohttp.ClientError, OSError, TimeoutError)


def ack_callback_data(notification_id: int) -> str:
    """The callback_data of the "Got it" button; the bot's callback handler parses it back."""
    return f"{ACK_PREFIX}{notification_id}"


def scrub_token(text: str, token: str) -> str:
    """``text`` without the bot token: every occurrence, and every ``/bot<anything>/`` URL segment."""
    if token:
        text = text.replace(token, MASK)
    return _BOT_SEGMENT.sub(f"/bot{MASK}/", text)


class TelegramChannel:
    """Sends through the Bot API at ``config.api_base``: Telegram, a local Bot API server, the simulator."""

    name = Channel.TELEGRAM

    def __init__(self, config: TelegramConfig) -> None:
        token = config.token.get_secret_value() if config.token is not None else ""
        if not token:
            raise ConfigError("[telegram] token: required (or set FNOTIFY_TELEGRAM_TOKEN)")
        self._token = token
        self.pacer = Pacer(config.rate_global, config.rate_per_chat)
        self._max_parts = config.max_parts
        session = AiohttpSession(api=TelegramAPIServer.from_base(config.api_base), timeout=config.timeout)
        try:
            # no default parse_mode: notification text goes out exactly as written
            self._bot = Bot(token, session=session, default=DefaultBotProperties(parse_mode=None))
        except TokenValidationError:
            raise ConfigError("[telegram] token: not a bot token (expected <digits>:<secret>)") from None

    @property
    def bot(self) -> Bot:
        """The one aiogram Bot (and HTTP session) of the daemon; the in-daemon bot reuses it."""
        return self._bot

    async def send(self, message: OutgoingMessage) -> str | None:
        """Send ``message.text`` as plain text, split on line boundaries when it is over 4096
        characters (the "Got it" button goes on the last part); return Telegram's message id, or the
        ids of the parts joined by commas. A part failing fails the attempt, and its retry sends every
        part again."""
        chat_id = message.recipient.telegram_chat_id
        if chat_id is None:
            raise PermanentError("no Telegram chat linked")
        parts = split_message(message.text)
        if len(parts) > self._max_parts:
            raise PermanentError(f"text too long for Telegram: {len(parts)} messages of {TELEGRAM_MAX} characters,"
                                 f" at most {self._max_parts} ([telegram] max_parts)")
        markup = None
        if message.ack_requested:
            button = InlineKeyboardButton(
                text=ACK_BUTTON_TEXT, callback_data=ack_callback_data(message.notification_id)
            )
            markup = InlineKeyboardMarkup(inline_keyboard=[[button]])
        ids = []
        for index, part in enumerate(parts):
            if index > 0:  # the first part's turn was claimed by wait_turn
                await self.pacer.acquire(chat_id)
            ids.append(await self._send_one(chat_id, part, markup if index == len(parts) - 1 else None))
        return ",".join(ids)

    async def wait_turn(self, recipient: Recipient) -> None:
        """Pace under Telegram's limits: the global rate and the per-chat rate."""
        if recipient.telegram_chat_id is not None:
            await self.pacer.acquire(recipient.telegram_chat_id)

    async def _send_one(self, chat_id: int, text: str, markup: InlineKeyboardMarkup | None) -> str:
        try:
            sent = await self._bot.send_message(chat_id, text, parse_mode=None, reply_markup=markup)
        except _RAISED as exc:
            if isinstance(exc, TelegramRetryAfter):
                self.pacer.block(chat_id, exc.retry_after)
            raise self._translate(exc) from exc
        return str(sent.message_id)

    async def check(self) -> str:
        """getMe: proves the token and the API base; returns ``@username``."""
        try:
            me = await self._bot.get_me()
        except _RAISED as exc:
            raise self._translate(exc) from exc
        return f"@{me.username}"

    async def close(self) -> None:
        await self._bot.session.close()

    def _translate(self, exc: BaseException) -> TransientError | PermanentError:
        """The ChannelError for one aiogram / transport error, its text free of the token."""
        error = _classify(exc)
        scrubbed = scrub_token(str(error), self._token)
        if isinstance(error, TransientError):
            return TransientError(scrubbed, retry_after=error.retry_after, rate_limited=error.rate_limited)
        return PermanentError(scrubbed, blocked=error.blocked)


def _classify(exc: BaseException) -> TransientError | PermanentError:
    # order matters: TelegramEntityTooLarge is a TelegramNetworkError subclass
    if isinstance(exc, TelegramRetryAfter):
        retry_after = exc.retry_after
        return TransientError(f"Telegram rate limit: retry after {retry_after}s", retry_after=retry_after,
                              rate_limited=True)
    if isinstance(exc, TelegramForbiddenError):
        blocked = any(marker in exc.message.lower() for marker in _BLOCKED_MARKERS)
        return PermanentError(f"Telegram refused: {exc.message}", blocked=blocked)
    if isinstance(exc, TelegramUnauthorizedError):
        return PermanentError("bot token rejected (401 Unauthorized)")
    if isinstance(exc, TelegramNotFound):
        return PermanentError(f"Telegram answered 404 ({exc.message}): is [telegram] api_base right?")
    if isinstance(exc, TelegramBadRequest | TelegramMigrateToChat | TelegramEntityTooLarge):
        return PermanentError(f"Telegram refused: {exc.message}")
    if isinstance(exc, TelegramServerError):
        return TransientError(f"Telegram server error: {exc.message}")
    if isinstance(exc, TelegramNetworkError):
        return TransientError(f"network error: {exc.message}")
    if isinstance(exc, TelegramAPIError):
        return TransientError(f"Telegram error: {exc.message}")
    if isinstance(exc, ClientDecodeError):
        return TransientError(f"unreadable answer from the Bot API: {exc.message}")
    if isinstance(exc, TimeoutError):
        return TransientError("timed out talking to the Bot API")
    return TransientError(f"network error: {type(exc).__name__}: {exc}")
