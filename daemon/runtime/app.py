"""The daemon: wires storage, channels, engine, service and socket server together."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, cast

from daemon.api.resources import http_listener_limits
from daemon.api.service import Service
from daemon.api.socket_server import SocketServer
from daemon.channels import build_channels, http_client
from daemon.channels.sms_receipts import POLL_EVERY, ReceiptPoller, StatusSource
from daemon.config import Config
from daemon.core.breaker import BreakerSettings
from daemon.core.engine import Engine
from daemon.core.errors import FnotifyError
from daemon.core.events import EventBus
from daemon.core.models import Channel, utcnow
from daemon.core.redact import Redactor
from daemon.core.store import BOT_ROLE, new_owner_id
from daemon.runtime.cluster import ClusterLink
from daemon.runtime.leader import Leadership
from daemon.runtime.logs import throttle_resource_errors
from daemon.runtime.reload import Reloader, bundle_policy, retry_policy, sms_policy
from daemon.runtime.systemd import Notifier, format_status
from daemon.runtime.telegram_bot import QUIET, BotHost
from daemon.storage.factory import make_rate_limits, make_store

if TYPE_CHECKING:
    from bot.runner import TelegramBot
    from daemon.api.http_api import HttpServer
    from daemon.runtime.metrics import Metrics
    from daemon.runtime.metrics_server import MetricsServer

log = logging.getLogger(__name__)

RETENTION_JOB = "retention"
RETENTION_EVERY = 86_400.0  # daily
RETENTION_FIRST = 60.0
RECEIPTS_JOB = "sms-receipts"  # the first prune a minute after start, off the start-up path


class Daemon:
    def __init__(self, config: Config, *, redactor: Redactor | None = None,
                 listen_socket: socket.socket | None = None, clock: Callable[[], datetime] = utcnow,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        """``clock`` (wall time, UTC) and ``monotonic`` (seconds) are every time the daemon reads:
        tests inject fake ones to step through backoff, ack waits and breaker cool-downs."""
        self.config = config
        self.redactor = redactor or Redactor(config.secrets())
        self.events = EventBus(clock=clock)
        self.owner = new_owner_id()  # this daemon's id in claims and leases, new at every start
        self.store = make_store(config, self.owner)  # SQLite in state_dir, or the PostgreSQL of [storage] url
        # Telegram's, [email] rate, [sms] rate: in the database on PostgreSQL, for every daemon together
        self.rate_limits = make_rate_limits(self.store)
        self.channels = build_channels(config, self.rate_limits)
        self.engine = Engine(self.store, self.channels, retry_policy(config), self.events, self.redactor,
                             max_in_flight=config.daemon.max_in_flight, clock=clock, monotonic=monotonic,
                             breaker=BreakerSettings(config.breaker.threshold, config.breaker.cooldown),
                             owner=self.owner, lease=config.storage.lease, sms=sms_policy(config),
                             bundle=bundle_policy(config))
        self.service = Service(config, self.store, self.engine, self.events, clock=clock, monotonic=monotonic)
        self.cluster = ClusterLink(self.store, self.engine, self.events)  # PostgreSQL: the other daemons' hints
        # heartbeats for `status`, and the one daemon of a cluster that polls Telegram (getUpdates)
        self.leadership = Leadership(self.store, self.owner, BOT_ROLE, config.storage.lease,
                                     on_elected=self._start_bot, on_deposed=self._stop_polling,
                                     clock=clock, monotonic=monotonic)
        self.server = SocketServer(self.service, config.daemon.socket_path,
                                   max_connections=config.daemon.max_connections,
                                   idle_timeout=config.daemon.idle_timeout, allowed_uids=config.daemon.allowed_uids,
                                   allowed_gids=config.daemon.allowed_gids)
        self.http_limits = http_listener_limits(config)  # for the API and the Telegram webhook alike
        self.http: HttpServer | None = None
        if config.http.enabled:
            from daemon.api.http_api import HttpServer  # aiohttp is imported only when the HTTP API is on

            self.http = HttpServer(self.service, config.http, shutdown_timeout=config.daemon.shutdown_grace,
                                   limits=self.http_limits)
        self.metrics: Metrics | None = None
        self.metrics_server: MetricsServer | None = None
        if config.metrics.enabled:
            from daemon.runtime.metrics import Metrics  # prometheus_client is imported only when metrics are on
            from daemon.runtime.metrics_server import MetricsServer

            self.metrics = Metrics(self.engine, self.store)
            self.events.tap(self.metrics.observe)
            self.metrics_server = MetricsServer(self.metrics, config.metrics, self.http_limits,
                                                shutdown_timeout=config.daemon.shutdown_grace)
        # the in-daemon Telegram bot: after READY, and polling only on the daemon that leads it
        self.bots = BotHost(self.service, self.http_limits, may_poll=lambda: self.leadership.leading,
                            busy=self._busy)
        self._listen_socket = listen_socket
        self._stopped = asyncio.Event()
        self._started = False
        self.notifier = Notifier.from_environment()  # a no-op unless run by systemd (Type=notify)
        self.reloader = Reloader(self)
        self.receipt_poller = ReceiptPoller(self._sms_status_source, self.store, clock, self.engine.poke)

    async def start(self) -> None:
        """Open the database, re-arm pending work, then listen: once this returns, clients are served.
        The Telegram bot (aiogram) comes up after, in the background: ``wait_bot()``."""
        throttle_resource_errors(asyncio.get_running_loop())
        await self.store.open()
        http_client.hold()  # a send before READY waits for it rather than import aiohttp beside the start-up
        try:
            await self.engine.start()
            await self.cluster.start()
            self.bots.prepare(self.config.telegram, self.channels.get(Channel.TELEGRAM))
            await self.leadership.start()  # the bot polls only on the daemon that leads (after READY)
            await self.server.start(self._listen_socket)
            listening: list[HttpServer | MetricsServer] = []
            try:
                for listener in (self.http, self.metrics_server):
                    if listener is not None:
                        await listener.start()
                        listening.append(listener)
            except BaseException:
                for listener in reversed(listening):
                    await listener.stop()
                await self.server.stop()
                raise
        except BaseException:
            await self.leadership.stop()
            await self.cluster.stop()
            await self.engine.stop(0)  # the dispatcher must not outlive the store it reads
            await self._close_resources()
            http_client.release()
            raise
        self._started = True
        self.engine.every(RETENTION_EVERY, RETENTION_JOB, self._prune, first_in=RETENTION_FIRST)
        if self.config.sms.enabled and self.config.sms.receipts == "poll":
            self.engine.every(POLL_EVERY, RECEIPTS_JOB, self.receipt_poller.poll, first_in=POLL_EVERY)
        enabled = ", ".join(str(c) for c in Channel if c in self.channels) or "none"
        log.info("failover-notify ready: socket %s, database %s, channels: %s, daemon id %s",
                 self.config.daemon.socket_path, self.store.location, enabled, self.owner)
        if Channel.TELEGRAM in self.channels or Channel.SMS in self.channels:
            http_client.preload()  # aiohttp, for their httpx clients: on a worker thread, after READY
        else:
            http_client.release()
        self.bots.launch(self.config.telegram, self.channels.get(Channel.TELEGRAM))

    @property
    def bot(self) -> TelegramBot | None:
        """The in-daemon Telegram bot once it is up (None before, and without Telegram)."""
        return self.bots.bot

    def _busy(self) -> bool:
        """Attempts in flight, or a send taken within the last QUIET seconds: no moment for aiogram's import."""
        return self.engine.in_flight > 0 or self.service.monotonic() - self.service.last_send < QUIET

    async def wait_bot(self) -> TelegramBot | None:
        """The bot, once its start (after READY, or after a reload) has run."""
        return await self.bots.wait()

    def _sms_status_source(self) -> StatusSource | None:
        """The SMS adapter in force, when it can be asked for a message's status (Twilio)."""
        adapter = self.engine.channels.get(Channel.SMS)
        if getattr(adapter, "provider", None) != "twilio":  # not imported here: httpx loads with the adapter
            return None
        return cast("StatusSource", adapter)

    async def _prune(self) -> None:
        """The daily retention job: final notifications older than ``[daemon] retention_days`` go."""
        try:
            pruned = await self.service.prune()
        except FnotifyError as exc:  # a full disk, say: the next run tries again
            log.error("retention prune failed: %s", exc)
            return
        if pruned:
            log.info("retention: pruned %d notification(s) older than %g days", pruned,
                     self.config.daemon.retention_days)

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        log.info("stopping: no new work; waiting for attempts in flight")
        if self.http is not None:
            await self.http.stop()
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        await self.server.stop()
        await self.bots.stop()  # before the engine and the store: its handlers use them
        await self.leadership.stop()  # after the bot confirmed its offset: then another daemon may poll
        await self.cluster.stop()
        await self.engine.stop(self.config.daemon.shutdown_grace)
        await self.reloader.aclose()
        self.events.close()
        await self._close_resources()
        log.info("stopped")
        self._stopped.set()

    async def _close_resources(self) -> None:
        await self.bots.stop()
        for adapter in self.channels.values():
            try:
                await adapter.close()
            except Exception:  # closing is best effort at shutdown
                log.warning("closing the %s adapter failed", adapter.name, exc_info=True)
        await self.store.close()

    async def run_until_signalled(self) -> None:
        """Serve until SIGTERM or SIGINT, then stop gracefully; SIGHUP reloads the config.

        Under systemd: READY=1 once serving, STATUS= and WATCHDOG=1 from this loop while running
        (and stopping), STOPPING=1 as soon as the signal arrives (see daemon.runtime.systemd).
        """
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        await self.start()
        # the imports (pydantic's config models and more) leave a large, immortal heap: move it out
        # of the collector's reach so full collections do not walk it again and again (the bot
        # does the same for aiogram's once it is up)
        gc.freeze()
        supervisor = asyncio.create_task(self.notifier.supervise(self.status_text), name="sd-notify")
        try:
            await stop.wait()
        finally:
            self.notifier.stopping()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            try:
                await self.stop()
            finally:
                supervisor.cancel()
                await asyncio.gather(supervisor, return_exceptions=True)
                loop.remove_signal_handler(signal.SIGHUP)  # only now: its default action is to exit

    def reload(self) -> None:
        """SIGHUP: re-read the config file and apply what can change live (see daemon.runtime.reload)."""
        if self._started:
            self.reloader.reload()
            self.bots.follow(self.config.telegram, self.channels.get(Channel.TELEGRAM))
        else:
            log.warning("SIGHUP ignored: not serving (starting or stopping)")

    # -- the Telegram bot's leadership (polling runs on one daemon of a cluster) ---------------------

    async def _start_bot(self) -> None:
        """Elected: this daemon now polls Telegram (once it is ready; see BotHost)."""
        self.bots.elected()

    async def _stop_polling(self) -> None:
        """Deposed: stop getUpdates at once, without the confirming call (another daemon may be polling)."""
        await self.bots.deposed()

    async def status_text(self) -> str:
        """One line for systemd's STATUS=: queue depth and attempts in flight."""
        return format_status(await self.store.counts_by_status(), self.engine.in_flight)
