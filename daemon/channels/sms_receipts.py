"""``[sms] receipts = "poll"``: ask Twilio for the status of every SMS waiting for its receipt, for
installs Twilio's status callback cannot reach.

Each pending receipt is asked about with backoff: ``FIRST_POLL`` seconds after it was last looked at,
doubling up to ``MAX_POLL``, until a final status or its timeout (the engine resolves the timeout from
the timer on disk, without a poll). A final status is written through the store like a callback's, and
the engine is poked. The schedule is in memory: after a restart every pending receipt is asked about
at the first poll, which is what a restart should do anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from daemon.core.errors import ChannelError, FnotifyError
from daemon.core.sms_receipt import FINAL_STATUSES
from daemon.core.store import Store

log = logging.getLogger(__name__)

POLL_EVERY = 5.0  # seconds between passes; each receipt is asked about on its own backoff
FIRST_POLL = 5.0
MAX_POLL = 120.0


class StatusSource(Protocol):
    async def fetch_status(self, message_sid: str) -> tuple[str, int | None]: ...


@dataclass(slots=True)
class _Next:
    at: datetime
    wait: float


class ReceiptPoller:
    def __init__(self, source: Callable[[], StatusSource | None], store: Store, clock: Callable[[], datetime],
                 on_final: Callable[[], None]) -> None:
        self._source = source  # the SMS adapter in force (replaced on a config reload), None if SMS is off
        self._store = store
        self._clock = clock
        self._on_final = on_final
        self._schedule: dict[str, _Next] = {}

    async def poll(self) -> None:
        """The scheduled job: one pass, its failures logged (the next pass tries again)."""
        try:
            await self.poll_once()
        except FnotifyError as exc:  # the database refused: the next pass tries again
            log.error("SMS receipts poll failed: %s", exc)

    async def poll_once(self) -> int:
        """One pass: ask about every pending receipt that is due; returns how many came out final."""
        source = self._source()
        if source is None:
            return 0
        now = self._clock()
        pending = await self._store.pending_receipts()
        self._schedule = {r.message_sid: self._schedule[r.message_sid]
                          for r in pending if r.message_sid in self._schedule}
        final = 0
        for receipt in pending:
            nxt = self._schedule.get(receipt.message_sid)
            if receipt.final or (nxt is not None and now < nxt.at):
                continue
            try:
                status, code = await source.fetch_status(receipt.message_sid)
            except ChannelError as exc:
                log.warning("SMS %s: status poll failed: %s", receipt.message_sid, exc)
                status, code = "", None
            wait = min(MAX_POLL, nxt.wait * 2) if nxt is not None else FIRST_POLL
            self._schedule[receipt.message_sid] = _Next(now + timedelta(seconds=wait), wait)
            if status and status != receipt.status:
                await self._store.record_receipt(receipt.message_sid, status, code, now)
            if status in FINAL_STATUSES:
                final += 1
        if final:
            self._on_final()
        return final
