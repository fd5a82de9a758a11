"""The in-daemon Telegram bot's place in the daemon: it comes up after READY, aiogram imported off the loop.

Importing aiogram costs seconds and ~130 MB (its ~300 pydantic models; upstream aiogram#1513), and
nothing the daemon must do to be ready needs it: the Telegram channel sends over httpx, and opt-in
links need only getMe. So the daemon becomes ready without it; ``launch()`` then waits for a quiet
moment (no attempt in flight for QUIET seconds, at most QUIET_LIMIT), imports ``bot.runner`` on a
worker thread, the event loop serving sends and deliveries meanwhile, and starts the bot on the loop.
If that fails, the daemon runs on without the bot and says so. The wait is there because the import
is seconds of Python holding the GIL: every attempt running beside it waits for the GIL at each step
(bench, failover latency at 200/s with the import overlapping: p50 95 ms, p99 432 ms). Waiting puts
that cost on the bot, which the issue (14) says must carry it, not on deliveries. A takeover of
polling (``elected()``) and a restart after a reload do not wait: they must poll within the lease.

What must not wait for the bot is done before READY, by ``prepare()``:
- opt-in links (``service.links``): ``bot.links.LinkIssuer`` with the channel's getMe (cached);
- webhook mode binds ``webhook_listen`` then, so a port that cannot be bound still refuses the start.

A reload that rebuilt the Telegram adapter moves the bot onto it (``follow()``): the old bot stops
without confirming its updates, and the new one confirms them when it is the same bot (same token).

In polling mode only the daemon that leads the cluster's bot polls (``may_poll``, from
``daemon.runtime.leader``): ``elected()`` starts the bot when it becomes leader after READY, and
``deposed()`` stops it at once, without the confirming ``getUpdates`` (another daemon may poll now).
Webhook mode runs the bot on every daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import TYPE_CHECKING

from bot.links import LinkIssuer
from daemon.api.resources import ListenerLimits
from daemon.api.service import Service
from daemon.channels import ChannelAdapter
from daemon.channels.telegram import TelegramChannel
from daemon.config import TelegramConfig, split_listen
from daemon.core.errors import ConfigError

if TYPE_CHECKING:
    from bot.runner import TelegramBot

log = logging.getLogger(__name__)


QUIET = 0.2
"""Seconds without an attempt in flight before aiogram's first import starts."""
QUIET_LIMIT = 30.0
"""Seconds after READY when the first import starts however busy the daemon is."""
QUIET_POLL = 0.05


async def wait_for_quiet(busy: Callable[[], bool], *, quiet: float = QUIET, limit: float = QUIET_LIMIT,
                         poll: float = QUIET_POLL, monotonic: Callable[[], float] = time.monotonic,
                         sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> bool:
    """Until ``busy()`` has been False for ``quiet`` seconds (True), or ``limit`` seconds went by (False)."""
    start = monotonic()
    quiet_since: float | None = None
    while True:
        now = monotonic()
        if busy():
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        if quiet_since is not None and now - quiet_since >= quiet:
            return True
        if now - start >= limit:
            return False
        await sleep(poll)


def bot_loaded() -> bool:
    """True once ``bot.runner`` (and aiogram) is imported: later starts have nothing to wait for."""
    return "bot.runner" in sys.modules


def import_bot_runner() -> ModuleType:
    """``bot.runner``, and with it aiogram: run on a worker thread, off the event loop."""
    return importlib.import_module("bot.runner")



def bind_webhook(listen: str) -> socket.socket:
    """A listening socket on ``host:port`` for the webhook server to take over once the bot is up."""
    host, port = split_listen(listen)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                              flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"[telegram] webhook_listen = {listen!r}: cannot listen: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's servers do
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"[telegram] webhook_listen = {listen!r}: cannot listen: {exc.strerror or exc}") from None
    return sock


class BotHost:
    """Owns the running ``TelegramBot`` (``bot``, None until it is up or without Telegram)."""

    def __init__(self, service: Service, limits: ListenerLimits, *,
                 may_poll: Callable[[], bool] = lambda: True, busy: Callable[[], bool] = lambda: False) -> None:
        self.service = service
        self.limits = limits
        self.may_poll = may_poll
        self.busy = busy
        """True while attempts are in flight: the first import of aiogram waits for a quiet moment."""
        self._waiting = False
        self._config: TelegramConfig | None = None  # set by launch(): the daemon is ready
        self._preload: asyncio.Task[None] | None = None
        self.bot: TelegramBot | None = None
        self._channel: TelegramChannel | None = None
        self._task: asyncio.Task[None] | None = None
        self._webhook_socket: socket.socket | None = None
        self._importing = False
        self._stopping = False

    def prepare(self, config: TelegramConfig, adapter: ChannelAdapter | None) -> None:
        """Before READY: opt-in links, and the webhook's port (ConfigError when it cannot be bound)."""
        self._set_links(config, adapter)
        if isinstance(adapter, TelegramChannel) and config.mode == "webhook":
            self._webhook_socket = bind_webhook(config.webhook_listen)

    def launch(self, config: TelegramConfig, adapter: ChannelAdapter | None) -> None:
        """After READY: import aiogram in the background and start the bot (nothing without Telegram;
        in polling mode nothing unless this daemon leads: ``elected()`` starts it then)."""
        self._config = config
        if isinstance(adapter, TelegramChannel):
            self._channel = adapter
            if self._allowed(config):
                self._task = asyncio.create_task(self._start(config, adapter, None, quiet=True),
                                                 name="telegram-bot-start")
            else:  # a standby: import aiogram now, off the loop, so that taking over polls within the lease
                self._preload = asyncio.create_task(self._warm(), name="telegram-bot-import")

    def elected(self) -> None:
        """This daemon now leads the bot: start polling, if the daemon is ready and the bot not up."""
        config, channel = self._config, self._channel
        if config is None or channel is None or self._stopping or self.bot is not None:
            return
        if self._task is not None and not self._task.done():
            return  # a start is on its way
        self._task = asyncio.create_task(self._start(config, channel, None), name="telegram-bot-start")

    async def deposed(self) -> None:
        """Another daemon leads now: stop polling at once, without confirming the updates."""
        if self._config is None or self._config.mode != "polling":
            return
        if self._task is not None and not self._task.done():
            if self._waiting:  # still waiting for a quiet moment to import aiogram: nothing to wait for
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)  # it sees may_poll() False and stops
        await self._stop_bot(confirm=False)

    async def _load(self, quiet: bool) -> ModuleType:
        """``bot.runner`` imported off the loop; the first time, with ``quiet``, at a quiet moment."""
        if quiet and not bot_loaded():
            self._waiting = True
            try:
                if not await wait_for_quiet(self.busy, quiet=QUIET, limit=QUIET_LIMIT):
                    log.info("no quiet moment within %.0f s of start: loading the Telegram bot now", QUIET_LIMIT)
            finally:
                self._waiting = False
        return await asyncio.to_thread(import_bot_runner)

    async def _warm(self) -> None:
        try:
            await self._load(quiet=True)
        except Exception:
            log.exception("the Telegram bot could not be loaded; this daemon cannot take over polling")
            return
        log.info("Telegram bot loaded on standby: ready to take over polling if the leader goes")

    def _allowed(self, config: TelegramConfig) -> bool:
        return config.mode == "webhook" or self.may_poll()

    def follow(self, config: TelegramConfig, adapter: ChannelAdapter | None) -> None:
        """After a reload: when it rebuilt the Telegram adapter, move links and the bot onto it."""
        channel = adapter if isinstance(adapter, TelegramChannel) else None
        if channel is self._channel or self._stopping:
            return
        self._channel = channel
        self._set_links(config, channel)
        self._task = asyncio.create_task(self._start(config, channel, self._task), name="telegram-bot-restart")

    async def wait(self) -> TelegramBot | None:
        """The bot once the latest start (or restart) has run; None without Telegram or if it failed."""
        while (task := self._task) is not None:
            await asyncio.gather(task, return_exceptions=True)
            if task is self._task:
                break
        return self.bot

    async def stop(self) -> None:
        """Stop the bot; a start still importing aiogram is abandoned."""
        self._stopping = True
        if self._preload is not None:  # a thread cannot be cancelled: let the import finish, once begun
            if self._waiting:
                self._preload.cancel()
            await asyncio.gather(self._preload, return_exceptions=True)
        if self._task is not None:
            if self._importing:
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._stop_bot(confirm=True)
        if self._webhook_socket is not None:
            self._webhook_socket.close()
            self._webhook_socket = None
        self.service.links = None

    def _set_links(self, config: TelegramConfig, adapter: ChannelAdapter | None) -> None:
        if isinstance(adapter, TelegramChannel):
            self.service.links = LinkIssuer(self.service.save_link_token, config.link_ttl, adapter.username,
                                            self.service.clock)
        else:
            self.service.links = None

    async def _start(self, config: TelegramConfig, channel: TelegramChannel | None,
                     previous: asyncio.Task[None] | None, *, quiet: bool = False) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        old_token = self.bot.bot.token if self.bot is not None else None
        # a restart: the old adapter is being closed by the reloader, so the old bot does not
        # confirm its updates; the new one does, when it is the same bot
        offset = await self._stop_bot(confirm=False)
        if channel is None or self._stopping or not self._allowed(config):
            return
        new_token = config.token.get_secret_value() if config.token is not None else ""
        try:
            self._importing = True
            try:
                runner = await self._load(quiet)
            finally:
                self._importing = False
            if self._stopping or not self._allowed(config):
                return
            bot: TelegramBot = runner.TelegramBot(config, channel, self.service, limits=self.limits,
                                                  resume_offset=offset if new_token == old_token else 0)
            sock, self._webhook_socket = self._webhook_socket, None
            self.bot = bot
            await bot.start(sock)
        except Exception:  # the bot must never take the daemon down: notifications still go out
            log.exception("the Telegram bot could not start; the daemon runs without it")
            with contextlib.suppress(Exception):
                await self._stop_bot(confirm=False)
            return
        # aiogram's ~300 pydantic models are as immortal as the daemon's own imports: out of the
        # collector's reach, as run_until_signalled does for those
        gc.freeze()

    async def _stop_bot(self, *, confirm: bool) -> int:
        bot, self.bot = self.bot, None
        return await bot.stop(confirm=confirm) if bot is not None else 0
