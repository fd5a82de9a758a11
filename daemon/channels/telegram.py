"""The Telegram channel: plain-text messages through the Bot API, with an optional ack button.

Sends go over the daemon's own httpx client (``daemon.channels.botapi``, where Telegram's answers
are mapped onto TransientError / PermanentError), not through aiogram: aiogram is the in-daemon
bot's (``bot/``), which has its own ``Bot`` and comes up after the daemon is ready.

Sends are paced (``[telegram] rate_global`` per bot and ``rate_per_chat``, see
``daemon.core.ratelimit``) so the daemon waits instead of provoking 429s; on PostgreSQL the limits are
kept in the database, for every daemon of the cluster together. The bot's replies draw on the same
``pacer``. A 429 that comes anyway blocks that chat for its ``retry_after`` and is raised with
``rate_limited=True``: the engine retries after the wait without counting a try.
"""

from __future__ import annotations

import hashlib
from typing import Any

from daemon.channels.botapi import BotApi, scrub_token
from daemon.channels.telegram_text import TELEGRAM_MAX, split_message
from daemon.config import TelegramConfig
from daemon.core.channel import OutgoingMessage
from daemon.core.errors import ChannelError, ConfigError, PermanentError, TransientError
from daemon.core.models import Channel, Recipient
from daemon.core.ratelimit import Limit, MemoryRateLimits, Pacer, RateLimitStore

__all__ = ["ACK_BUTTON_TEXT", "ACK_PREFIX", "TelegramChannel", "ack_callback_data", "scrub_token"]

ACK_BUTTON_TEXT = "✅ Got it"
ACK_PREFIX = "ack:"
BOT_MAX_SKIP = 3
"""Per-bot slots a send held back by its chat's 1/s may book ahead (``daemon.core.ratelimit.Limit``):
beyond that it asks again later, so a busy chat never makes the other chats queue behind it."""


def bot_id(token: str) -> str:
    """What names the bot's rate limits (Telegram counts per bot): the token's id part, public unlike
    the rest; a token not shaped "<digits>:<secret>" by a digest, so no secret lands in the database."""
    head, colon, _ = token.partition(":")
    if colon and head.isdigit():
        return head
    return "sha256-" + hashlib.sha256(token.encode()).hexdigest()[:16]


def ack_callback_data(notification_id: int) -> str:
    """The callback_data of the "Got it" button; the bot's callback handler parses it back."""
    return f"{ACK_PREFIX}{notification_id}"


class TelegramChannel:
    """Sends through the Bot API at ``config.api_base``: Telegram, a local Bot API server, the simulator."""

    name = Channel.TELEGRAM

    def __init__(self, config: TelegramConfig, rate_limits: RateLimitStore | None = None) -> None:
        token = config.token.get_secret_value() if config.token is not None else ""
        if not token:
            raise ConfigError("[telegram] token: required (or set FNOTIFY_TELEGRAM_TOKEN)")
        bot = f"telegram:{bot_id(token)}"
        per_bot = Limit(bot, config.rate_global, max_skip=BOT_MAX_SKIP / config.rate_global)
        self.pacer = Pacer(rate_limits or MemoryRateLimits(), per_bot,
                           per_key_rate=config.rate_per_chat, per_key_prefix=f"{bot}:chat:")
        """Per-chat and per-bot budget: notifications here, the bot's replies in ``bot.pacing``."""
        self._max_parts = config.max_parts
        self._api = BotApi(config.api_base, token, timeout=config.timeout)
        self._username: str | None = None

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
            button = {"text": ACK_BUTTON_TEXT, "callback_data": ack_callback_data(message.notification_id)}
            markup = {"inline_keyboard": [[button]]}
        ids = []
        for index, part in enumerate(parts):
            if index > 0:  # the first part's turn was claimed by wait_turn
                await self.pacer.acquire(chat_id)
            ids.append(await self._send_one(chat_id, part, markup if index == len(parts) - 1 else None))
        return ",".join(ids)

    async def wait_turn(self, recipient: Recipient) -> None:
        """Pace under Telegram's limits: the global rate and the per-chat rate."""
        if recipient.telegram_chat_id is not None:
            await self._api.ready()  # the first send's wait for aiohttp comes before its turn, not after
            await self.pacer.acquire(recipient.telegram_chat_id)

    async def _send_one(self, chat_id: int, text: str, markup: dict[str, Any] | None) -> str:
        # no parse_mode: notification text goes out exactly as written
        params: dict[str, Any] = {"chat_id": chat_id, "text": text}
        if markup is not None:
            params["reply_markup"] = markup
        try:
            sent = await self._api.call("sendMessage", params)
        except TransientError as exc:
            if exc.rate_limited and exc.retry_after is not None:
                await self.pacer.block(chat_id, exc.retry_after)
            raise
        message_id = sent.get("message_id") if isinstance(sent, dict) else None
        if not isinstance(message_id, int) or isinstance(message_id, bool):
            raise TransientError("unreadable answer from the Bot API: Failed to deserialize object")
        return str(message_id)

    async def check(self) -> str:
        """getMe: proves the token and the API base; returns ``@username``."""
        me = await self._api.call("getMe")
        username = me.get("username") if isinstance(me, dict) else None
        if not isinstance(username, str) or not username:
            raise TransientError("unreadable answer from the Bot API: Failed to deserialize object")
        self._username = username
        return f"@{username}"

    async def username(self) -> str:
        """The bot's username for opt-in links: getMe once, then cached (a reload makes a new adapter)."""
        if self._username is not None:
            return self._username
        try:
            return (await self.check()).removeprefix("@")
        except ChannelError as exc:
            raise ChannelError(f"cannot learn the bot's username from Telegram (getMe): {exc}") from exc

    async def close(self) -> None:
        await self._api.aclose()
