"""LISTEN for the hints other daemons' writes send (migrations/postgres/0003_cluster.sql).

One connection of its own, outside the pool: a LISTEN belongs to a session, and a pooled connection
goes back to the pool. The hints are only hints: each is handed to a callback and forgotten. When the
connection drops (the server restarted, a network cut, an administrator's pg_terminate_backend) the
listener reconnects with a growing back-off and then calls ``on_reconnect``, since hints sent while it
was away are lost: the daemon then re-reads what they would have told it. A keep-alive query every
KEEPALIVE seconds finds a connection that died without a word (a half-open TCP connection).

Channels and payloads:
    fnotify_due     "<daemon> <epoch seconds>": a notification is due at that time, unclaimed
    fnotify_status  JSON {"by", "id", "recipient_id", "status", "channel", "created_at"}
    fnotify_paused  "<daemon> <true|false>"
Hints whose daemon is this one are skipped: it acted on its own writes already.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from daemon.database_url import PostgresUrl
from daemon.storage.postgres_schema import CONNECT_TIMEOUT, DRIVER_ERRORS, describe, server_settings

log = logging.getLogger(__name__)

CHANNELS = ("fnotify_due", "fnotify_status", "fnotify_paused")
KEEPALIVE = 10.0
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 10.0


@dataclass(frozen=True, slots=True)
class Hints:
    """What to do with each hint; every callback is called on the event loop and must not block."""

    due: Callable[[datetime], None]
    status: Callable[[dict[str, Any]], None]
    paused: Callable[[bool], None]
    reconnected: Callable[[], None]


class Listener:
    def __init__(self, url: PostgresUrl, owner: str, hints: Hints) -> None:
        self.url = url
        self.owner = owner
        self.hints = hints
        self.connections = 0  # connections made so far: 1 after start, +1 per reconnect
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self, timeout: float = CONNECT_TIMEOUT) -> None:
        """Listen in the background; returns once listening (or, the server being away, after ``timeout``:
        the listener keeps trying, and the timer covers for it meanwhile)."""
        self._task = asyncio.create_task(self._run(), name="postgres-listen")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        delay = BACKOFF_FIRST
        while True:
            try:
                conn = await asyncpg.connect(self.url.dsn, timeout=CONNECT_TIMEOUT,
                                             server_settings=server_settings(self.owner, "failover-notify listen"))
            except (*DRIVER_ERRORS, ValueError) as exc:
                log.warning("cannot LISTEN on %s: %s; trying again in %.1f s", self.url.display, describe(exc), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            try:
                await self._listen(conn)
            except DRIVER_ERRORS as exc:
                log.warning("the LISTEN connection to %s dropped: %s; reconnecting", self.url.display, describe(exc))
            finally:
                self._connected.clear()
                with contextlib.suppress(*DRIVER_ERRORS):
                    await asyncio.wait_for(conn.close(), 1.0)
            delay = BACKOFF_FIRST

    async def _listen(self, conn: asyncpg.Connection[Any]) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        for channel in CHANNELS:
            await conn.add_listener(channel, self._on_notify)
        self.connections += 1
        self._connected.set()
        if self.connections > 1:
            log.info("listening on %s again", self.url.display)
            self.hints.reconnected()
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), KEEPALIVE)
            if not lost.is_set():
                await conn.execute("SELECT 1", timeout=KEEPALIVE)
        raise ConnectionError("connection closed")

    def _on_notify(self, _conn: object, _pid: int, channel: str, payload: object) -> None:
        # asyncpg's listener type says payload: object; it is always the NOTIFY's text
        try:
            self._dispatch(channel, str(payload))
        except (ValueError, KeyError, TypeError):  # not ours, or a newer daemon's format: a hint, skip it
            log.debug("ignored a %s hint: %.200r", channel, payload)

    def _dispatch(self, channel: str, payload: str) -> None:
        if channel == "fnotify_status":
            data = json.loads(payload)
            if data.pop("by") != self.owner:
                self.hints.status(data)
            return
        origin, _, value = payload.rpartition(" ")
        if origin == self.owner:
            return
        if channel == "fnotify_due":
            self.hints.due(datetime.fromtimestamp(float(value), UTC))
        elif channel == "fnotify_paused":
            self.hints.paused(value == "true")
