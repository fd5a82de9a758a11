"""The daemon: wires storage, channels, engine, service and socket server together."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from typing import Any

from daemon.channels import build_channels
from daemon.config import Config
from daemon.engine import Engine
from daemon.events import EventBus
from daemon.failover import RetryPolicy
from daemon.models import Channel
from daemon.redact import Redactor
from daemon.service import Service
from daemon.socket_server import SocketServer
from daemon.storage import SqliteStore

log = logging.getLogger(__name__)


def retry_policy(config: Config) -> RetryPolicy:
    r = config.retry
    return RetryPolicy(r.attempts_per_channel, r.backoff_initial, r.backoff_max)


class Daemon:
    def __init__(self, config: Config, *, redactor: Redactor | None = None,
                 listen_socket: socket.socket | None = None) -> None:
        self.config = config
        self.redactor = redactor or Redactor(config.secrets())
        self.events = EventBus()
        self.store = SqliteStore(config.daemon.database)
        self.channels = build_channels(config)
        self.engine = Engine(self.store, self.channels, retry_policy(config), self.events, self.redactor,
                             max_in_flight=config.daemon.max_in_flight)
        self.service = Service(config, self.store, self.engine, self.events)
        self.server = SocketServer(self.service, config.daemon.socket_path)
        self._listen_socket = listen_socket
        self._stopped = asyncio.Event()
        self._started = False

    async def start(self) -> None:
        """Open the database, re-arm pending work, then listen: once this returns, clients are served."""
        await self.store.open()
        try:
            await self.engine.start()
            await self.server.start(self._listen_socket)
        except BaseException:
            await self._close_resources()
            raise
        self._started = True
        enabled = ", ".join(str(c) for c in Channel if c in self.channels) or "none"
        log.info("failover-notify ready: socket %s, database %s, channels: %s",
                 self.config.daemon.socket_path, self.config.daemon.database, enabled)

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        log.info("stopping: no new work; waiting for attempts in flight")
        await self.server.stop()
        await self.engine.stop(self.config.daemon.shutdown_grace)
        self.events.close()
        await self._close_resources()
        log.info("stopped")
        self._stopped.set()

    async def _close_resources(self) -> None:
        for adapter in self.channels.values():
            try:
                await adapter.close()
            except Exception:  # closing is best effort at shutdown
                log.warning("closing the %s adapter failed", adapter.name, exc_info=True)
        await self.store.close()

    async def run_until_signalled(self) -> None:
        """Serve until SIGTERM or SIGINT, then stop gracefully."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.stop()

    def status_line(self) -> dict[str, Any]:
        return {"in_flight": self.engine.in_flight}
