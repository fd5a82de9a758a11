"""The in-daemon Telegram bot: one aiogram ``Dispatcher`` on the daemon's event loop.

It has its own aiogram ``Bot`` (and HTTP session): the Telegram channel sends notifications without
aiogram, and the daemon starts this bot only once it is ready, importing aiogram in the background
(``daemon.runtime.telegram_bot``), so aiogram's cost is the bot's alone. Its replies are charged to
the channel's ``Pacer`` (``bot.pacing``): one per-chat and one per-bot budget for both.
Updates come by long polling (``[telegram] mode = "polling"``, the default: no inbound port) or by
a webhook (``mode = "webhook"``: an aiohttp server on ``webhook_listen`` that refuses any request
without the ``X-Telegram-Bot-Api-Secret-Token`` header equal to ``webhook_secret``).

Nothing here can take the daemon down: getMe, setMyCommands and the webhook set-up are retried
with backoff until Telegram answers; aiogram's polling backs off on network errors by itself; a
handler error is logged and its update dropped (``bot.handlers.on_error``). ``stop()`` cancels the
long poll at once, gives running handlers a moment, then tells Telegram which updates were handled
(the next getUpdates offset), so a restart does not replay them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageReplyMarkup,
    EditMessageText,
    GetMe,
    GetUpdates,
    SendMessage,
)
from aiogram.methods.base import Response
from aiogram.types import BotCommand, TelegramObject, Update
from aiogram.utils.backoff import BackoffConfig
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from bot import texts
from bot.handlers import build_router, on_error
from bot.pacing import ReplyPacing, handling_update
from daemon.api.http_guard import Listener, ListenerLimits
from daemon.api.service import Service
from daemon.channels.telegram import TelegramChannel
from daemon.config import TelegramConfig, split_listen
from daemon.core.errors import ConfigError

log = logging.getLogger(__name__)

# aiogram parametrises Response[...] for every API answer, and pydantic caches parametrised models
# only weakly: with no strong reference the class is rebuilt (schema and all) on each call. Holding
# the ones the bot uses keeps them cached (py-spy: ~10 % of the CPU at 600 messages/s).
_RESPONSE_TYPES = tuple(
    Response[method.__returning__]  # type: ignore[name-defined]
    for method in (SendMessage, GetMe, GetUpdates, EditMessageText, EditMessageReplyMarkup, AnswerCallbackQuery)
)

POLL_TIMEOUT = 25
"""Seconds one getUpdates long poll waits on Telegram's side (stop() cancels it at once)."""
SETUP_RETRY = (1.0, 30.0)
"""First and longest wait between tries of the start-up calls while Telegram is unreachable."""
POLL_BACKOFF = BackoffConfig(min_delay=1.0, max_delay=10.0, factor=1.5, jitter=0.1)
"""aiogram's wait between failed getUpdates calls (it logs each failure and goes on)."""
HANDLER_GRACE = 2.0
"""Seconds stop() waits for handlers still running before cancelling them."""
CONFIRM_TIMEOUT = 2.0


def make_bot(config: TelegramConfig) -> Bot:
    """An aiogram Bot on ``[telegram] api_base`` with no default parse_mode (replies go out as written)."""
    token = config.token.get_secret_value() if config.token is not None else ""
    session = AiohttpSession(api=TelegramAPIServer.from_base(config.api_base), timeout=config.timeout)
    return Bot(token, session=session, default=DefaultBotProperties(parse_mode=None))


class TelegramBot:
    """Start with ``start()``, stop with ``stop()`` (which closes its Bot's session)."""

    def __init__(self, config: TelegramConfig, channel: TelegramChannel, service: Service, *,
                 resume_offset: int = 0, limits: ListenerLimits | None = None) -> None:
        self.config = config
        self.limits = limits or ListenerLimits()
        """Connection cap and header / body deadlines of the webhook listener (``[http]`` keys)."""
        self.channel = channel
        self.bot = make_bot(config)
        self.service = service
        self.dispatcher = Dispatcher(disable_fsm=True, service=service)  # handlers get ``service``
        self.dispatcher.include_router(build_router())
        self.dispatcher.errors.register(on_error)
        self.dispatcher.update.outer_middleware(self._track)
        self.ready = asyncio.Event()
        """Set once getMe, setMyCommands and the polling / webhook set-up went through."""
        self.webhook_address: tuple[str, int] | None = None
        self._task: asyncio.Task[None] | None = None
        self._polling = False
        self._webhook: Listener | None = None
        self._handling: dict[asyncio.Task[Any], int] = {}  # handler task -> its update_id
        self._last_update_id = 0
        self._resume_offset = resume_offset  # updates a previous instance handled (same bot)
        self.bot.session.middleware(ReplyPacing(channel.pacer))  # replies share the adapter's budget

    @property
    def mode(self) -> str:
        return self.config.mode

    async def start(self, webhook_socket: socket.socket | None = None) -> None:
        """Begin; returns at once (Telegram may be unreachable). Webhook mode listens first, on
        ``webhook_socket`` when the daemon bound it already: a port that cannot be bound is a
        ConfigError, as for any server of the daemon."""
        if self.mode == "webhook":
            await self._listen_webhook(webhook_socket)
        self._task = asyncio.create_task(self._run(), name="telegram-bot")

    @property
    def next_offset(self) -> int:
        """The getUpdates offset that confirms every update this instance handled (0: none)."""
        return self._last_update_id + 1 if self._last_update_id else 0

    async def stop(self, *, confirm: bool = True) -> int:
        """Stop receiving updates, finish (or cancel) handlers and, with ``confirm``, tell Telegram
        what was handled; returns that offset (0: nothing to confirm)."""
        task, self._task = self._task, None
        if task is None:
            await self.bot.session.close()
            return 0
        if self._polling:
            await self.dispatcher.stop_polling()  # cancels the long poll; start_polling returns
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if self._webhook is not None:
            await self._webhook.stop()  # no new requests; those answered already run as tasks
            self._webhook = None
        await asyncio.sleep(0)  # handler tasks made from the last poll enter _track
        unfinished = await self._drain()
        offset = min(unfinished) if unfinished else self.next_offset
        if self._polling and confirm:
            await self._confirm(offset)
        self._polling = False
        await self.bot.session.close()
        log.info("Telegram bot stopped")
        return offset

    # -- running -----------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = SETUP_RETRY[0]
        while True:
            try:
                await self._set_up()
                if self.mode == "webhook":
                    return  # updates arrive at the webhook server
                self._polling = True  # no await before start_polling: stop() finds it running
                await self.dispatcher.start_polling(
                    self.bot, polling_timeout=POLL_TIMEOUT, backoff_config=POLL_BACKOFF, handle_signals=False,
                    close_bot_session=False, allowed_updates=self.dispatcher.resolve_used_update_types(),
                )
                return  # stop_polling() was called
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the bot must never take the daemon down: log, wait, try again
                self._polling = False
                log.warning("Telegram bot: %s: %s; trying again in %.0f s", type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, SETUP_RETRY[1])

    async def _set_up(self) -> None:
        username = await self.channel.username()
        await self.bot.set_my_commands([BotCommand(command=c, description=d) for c, d in texts.COMMANDS])
        allowed = self.dispatcher.resolve_used_update_types()
        if self.mode == "webhook":
            secret = self.config.webhook_secret
            await self.bot.set_webhook(str(self.config.webhook_url), allowed_updates=allowed,
                                       secret_token=secret.get_secret_value() if secret else None)
            log.info("Telegram bot @%s: updates by webhook %s (listening on %s)", username,
                     self.config.webhook_url, self.config.webhook_listen)
        else:
            await self.bot.delete_webhook()  # getUpdates is refused while a webhook is set
            await self._confirm(self._resume_offset)
            log.info("Telegram bot @%s: updates by long polling", username)
        self.ready.set()

    async def _track(
        self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]], event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        """Outer middleware: which updates are being handled, for stop() and the confirming offset."""
        task = asyncio.current_task()
        update_id = event.update_id if isinstance(event, Update) else 0
        self._last_update_id = max(self._last_update_id, update_id)
        if update_id and not await self.service.first_time_update(update_id):
            log.info("Telegram update %d was handled already (a bot leader before this one): skipped", update_id)
            return None
        if task is not None:
            self._handling[task] = update_id
        try:
            with handling_update():  # this task's replies are paced with the notifications
                return await handler(event, data)
        finally:
            if task is not None:
                self._handling.pop(task, None)

    async def _drain(self) -> list[int]:
        """Wait up to HANDLER_GRACE for running handlers; cancel the rest and return their update ids."""
        if not self._handling:
            return []
        _, pending = await asyncio.wait(set(self._handling), timeout=HANDLER_GRACE)
        unfinished = [self._handling[t] for t in pending if t in self._handling]
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if unfinished:
            log.warning("Telegram bot: %d update(s) still being handled at stop; Telegram will resend them",
                        len(unfinished))
        return unfinished

    async def _confirm(self, offset: int) -> None:
        """getUpdates with ``offset``: Telegram forgets every update before it (best effort)."""
        if offset <= 1:
            return
        try:
            async with asyncio.timeout(CONFIRM_TIMEOUT):
                await self.bot.get_updates(offset=offset, timeout=0, limit=1)
        except Exception as exc:  # at worst a handled update is handled again
            log.debug("could not confirm Telegram updates before %d: %s", offset, exc)

    # -- webhook -----------------------------------------------------------------------------

    async def _listen_webhook(self, sock: socket.socket | None) -> None:
        secret = self.config.webhook_secret
        # stop() closes the Bot's session, after the last handler: not this handler (so no register())
        handler = SimpleRequestHandler(self.dispatcher, self.bot,
                                       secret_token=secret.get_secret_value() if secret else None)
        app = web.Application()
        app.router.add_post(urlsplit(str(self.config.webhook_url)).path or "/", handler.handle)
        host, port = split_listen(self.config.webhook_listen)
        listener = Listener(app, host, port, self.limits, name="Telegram webhook", shutdown_timeout=1.0)
        try:
            await listener.start(sock)
        except OSError as exc:
            raise ConfigError(f"[telegram] webhook_listen = {self.config.webhook_listen!r}: cannot listen: "
                              f"{exc.strerror or exc}") from None
        self._webhook = listener
        self.webhook_address = listener.address
