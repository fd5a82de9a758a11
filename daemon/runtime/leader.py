"""Leadership by lease row, and the members' heartbeats (Oban's ``oban_peers``).

Exactly one daemon of a cluster runs the Telegram bot's ``getUpdates`` (Telegram answers a second,
concurrent poller with 409 Conflict). Every daemon runs a ``Leadership``: every lease / 2 it writes its
heartbeat and asks the store to take or renew the bot's lease (``Store.lead``: the statement writes only
the caller's own row or an expired one). Each renewal may take at most lease / 4; a daemon that cannot
renew (an error, no answer, another daemon holds the row) stops polling at once, so the latest it stops
is 3/4 of a lease after its last successful renewal began: before the lease it holds runs out and
another daemon may take over. When a leader dies, its lease runs out and the next round of any other
daemon takes it: a takeover within one lease and a half at most.

``on_elected`` / ``on_deposed`` start and stop the poller; they are awaited in this loop, one at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from daemon.core.errors import StorageError
from daemon.core.store import Store

log = logging.getLogger(__name__)

STALE_LEASES = 3  # a member silent for three leases is gone


class Leadership:
    def __init__(self, store: Store, owner: str, role: str, lease: float, *,
                 on_elected: Callable[[], Awaitable[None]], on_deposed: Callable[[], Awaitable[None]],
                 clock: Callable[[], datetime], monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.owner = owner
        self.role = role
        self.lease = lease
        self.on_elected = on_elected
        self.on_deposed = on_deposed
        self.clock = clock
        self.monotonic = monotonic
        self.leading = False
        self.started_at = clock()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """The first round now (a lone daemon starts its bot at once), the next ones every lease / 2."""
        await self.round()
        self._task = asyncio.create_task(self._loop(), name=f"leadership-{self.role}")

    async def stop(self) -> None:
        """Stop renewing; give the role up (and leave) so that another daemon takes over at once."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._depose("stopping")
        try:
            await self.store.leave(self.owner)
        except StorageError as exc:  # its lease runs out instead
            log.warning("could not leave the cluster cleanly: %s", exc)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 2)
            await self.round()

    async def round(self) -> None:
        """One heartbeat and one take-or-renew; starts or stops the poller on a change."""
        now = self.clock()
        try:
            async with asyncio.timeout(self.lease / 4):
                await self.store.heartbeat(self.owner, self.started_at, now,
                                           now - timedelta(seconds=STALE_LEASES * self.lease))
                won = await self.store.lead(self.role, self.owner, now, now + timedelta(seconds=self.lease))
        except (StorageError, TimeoutError) as exc:
            await self._depose(f"cannot renew its lease: {exc or 'no answer'}")
            return
        if won and not self.leading:
            log.info("this daemon now leads %s (lease %g s)", self.role, self.lease)
            self.leading = True
            try:
                await self.on_elected()
            except Exception:  # the bot's own start retries; a failure here must not end the loop
                log.exception("starting %s failed", self.role)
        elif not won:
            await self._depose("another daemon holds the lease")

    async def _depose(self, why: str) -> None:
        if not self.leading:
            return
        log.warning("this daemon stops leading %s: %s", self.role, why)
        self.leading = False
        try:
            await self.on_deposed()
        except Exception:
            log.exception("stopping %s failed", self.role)
