"""The daemon's part in a cluster on PostgreSQL: LISTEN for the other daemons' hints and act on them.

Nothing here is needed for correctness: a lost hint only costs time, because the engine's timer is
armed from the database and the pause flag is re-read every lease / 3. With hints, a send accepted by
one daemon is picked up at once by whichever daemon is free, a pause holds everywhere within a round
trip, and ``subscribe`` on any daemon streams the ``notification.status`` changes made elsewhere.
On SQLite (one daemon) there is nothing to listen to.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import datetime
from typing import Any

from daemon.core.engine import Engine
from daemon.core.errors import StorageError
from daemon.core.events import EventBus
from daemon.core.store import Store

log = logging.getLogger(__name__)


class ClusterLink:
    """Wires a PostgreSQL listener to the engine and the event bus; ``start`` does nothing on SQLite."""

    def __init__(self, store: Store, engine: Engine, events: EventBus) -> None:
        self.store = store
        self.engine = engine
        self.events = events
        self._listener: Any = None  # postgres_listen.Listener, imported only on PostgreSQL
        self._refreshing: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        # a PostgresStore exists only once its module was imported: on SQLite, importing it here just
        # to ask would load asyncpg (~90 ms of start-up, ~3 MiB) for nothing
        postgres = sys.modules.get("daemon.storage.postgres")
        if postgres is None or not isinstance(self.store, postgres.PostgresStore):
            return
        from daemon.storage.postgres_listen import Hints, Listener

        hints = Hints(due=self._due, status=self._status, paused=self._paused, reconnected=self._reconnected)
        self._listener = Listener(self.store.url, self.engine.owner, hints)
        await self._listener.start()

    async def stop(self) -> None:
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None
        for task in list(self._refreshing):
            task.cancel()
        await asyncio.gather(*self._refreshing, return_exceptions=True)

    def _due(self, when: datetime) -> None:
        self.engine.hint_due(when)

    def _status(self, data: dict[str, Any]) -> None:
        self.events.relay("notification.status", data)

    def _paused(self, paused: bool) -> None:
        if paused == self.engine.paused:
            return
        log.info("delivery %s by another daemon", "paused" if paused else "resumed")
        if paused:
            self.engine.pause()
        else:
            self.engine.resume()
        self.events.relay("daemon.paused", {"paused": paused})

    def _reconnected(self) -> None:
        """Hints sent while the listener was away are lost: look for due work and re-read the pause flag."""
        self.engine.poke()
        task = asyncio.create_task(self._refresh(), name="cluster-refresh")
        self._refreshing.add(task)
        task.add_done_callback(self._refreshing.discard)

    async def _refresh(self) -> None:
        try:
            await self.engine.refresh_paused()
        except StorageError as exc:
            log.error("reading the pause flag failed: %s", exc)
