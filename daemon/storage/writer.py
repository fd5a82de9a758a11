"""Group commit: every write runs on one connection, many writes share one commit.

Writers call ``submit(op)``; a single task drains whatever is waiting, runs each op inside one
``BEGIN IMMEDIATE`` transaction and commits once, then resolves every waiting future. With
``synchronous = FULL`` a commit costs an fsync (about 0.2 ms here), so batching is what lets
thousands of acknowledged sends per second share a handful of fsyncs. No future is resolved
before the commit that holds its write returned: an acknowledgement always means "on disk".

An op must leave the transaction consistent when it raises: do checks before writes, and let
a single failing statement be undone by SQLite's statement-level rollback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiosqlite

from daemon.errors import FnotifyError, StorageError

log = logging.getLogger(__name__)

T = TypeVar("T")
WriteOp = Callable[[aiosqlite.Connection], Awaitable[T]]

MAX_BATCH = 512


class GroupCommitWriter:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._pending: list[tuple[WriteOp[Any], asyncio.Future[Any]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="storage-writer")

    async def submit(self, op: WriteOp[T]) -> T:
        if self._closed:
            raise StorageError("storage is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((op, future))
        self._wake.set()
        return await future

    async def close(self) -> None:
        """Finish what was submitted, then stop."""
        self._closed = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                await self._commit_batch(batch)
            if self._closed:
                return

    async def _commit_batch(self, batch: list[tuple[WriteOp[Any], asyncio.Future[Any]]]) -> None:
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        try:
            await self._conn.execute("BEGIN IMMEDIATE")
            for op, future in batch:
                try:
                    outcomes.append((future, await op(self._conn), None))
                except (FnotifyError, aiosqlite.IntegrityError) as exc:
                    outcomes.append((future, None, exc))
            await self._conn.commit()
        except Exception as exc:  # disk full, read-only file, I/O error: nobody gets a false ack
            log.error("database write failed, %d request(s) refused: %s", len(batch), exc)
            try:
                await self._conn.rollback()
            except Exception:
                log.debug("rollback after failed commit also failed", exc_info=True)
            error = StorageError(f"database write failed: {exc}")
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for future, value, error_ in outcomes:
            if future.done():  # the caller went away (cancelled); its write still landed
                continue
            if error_ is not None:
                future.set_exception(error_)
            else:
                future.set_result(value)
