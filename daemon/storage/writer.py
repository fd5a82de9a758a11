"""Group commit: every write runs on one connection, many writes share one commit, one thread hop.

Writers call ``submit(op)``, where ``op`` is a plain function of a ``sqlite3.Connection``. A single
task drains whatever is waiting and runs the whole batch on the write connection's own thread in ONE
hop: ``BEGIN IMMEDIATE``, every op, ``COMMIT``. With ``synchronous = FULL`` a commit costs an
fsync (about 0.2 ms here), so batching is what lets thousands of acknowledged sends per second
share a handful of fsyncs; running the batch in one hop instead of one hop per statement (about
0.1 ms each on a busy machine) is what keeps a large batch from taking tens of milliseconds.
No future is resolved before the commit that holds its write returned: an acknowledgement always
means "on disk".

Ops in one batch come from unrelated requests, so each runs inside its own ``SAVEPOINT``: an op that
raises anything (a refusal, a constraint, a value SQLite cannot bind, a bug) has its own writes rolled
back and gets its own exception, and the batch commits everyone else's. An op wrapped in
``OneStatement`` (at most one writing statement, raising only when it wrote nothing) skips the
savepoint: SQLite undoes a failed statement by itself. Only a fault of the database
itself (disk full, read-only file, I/O error, corruption, a lock) fails the whole batch: every op
would meet it, SQLite may already have rolled the transaction back, and nobody may get a false ack.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Generic, TypeVar

from daemon.core.errors import StorageError

log = logging.getLogger(__name__)

T = TypeVar("T")
WriteOp = Callable[[sqlite3.Connection], T]
Outcome = tuple[Any, BaseException | None]

MAX_BATCH = 512


class WriteConnection:
    """The one connection every write goes through: a standard ``sqlite3`` connection that lives on a
    thread of its own (a one-worker executor), so ``await run(fn)`` runs ``fn(raw)`` there in one hop.

    Reads stay on aiosqlite, one statement per hop, which is all they need. A whole transaction in
    one hop is not something aiosqlite offers through its public API (it needs its private
    ``_execute`` and ``_conn``), so the writer owns its thread instead of borrowing aiosqlite's.
    """

    def __init__(self, raw: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self._raw: sqlite3.Connection | None = raw
        self._executor = executor

    @classmethod
    async def open(cls, path: Path, configure: Callable[[sqlite3.Connection], None]) -> WriteConnection:
        """Connect on the writer's thread (autocommit: transactions are explicit) and ``configure``."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fnotify-sqlite-writer")

        def connect() -> sqlite3.Connection:
            raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            try:
                raw.row_factory = sqlite3.Row
                configure(raw)
            except BaseException:
                raw.close()
                raise
            return raw

        try:
            raw = await asyncio.get_running_loop().run_in_executor(executor, connect)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(raw, executor)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(raw)`` on the writer's thread."""
        raw = self._raw
        if raw is None:
            raise StorageError("storage is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, raw)

    async def close(self) -> None:
        raw, self._raw = self._raw, None
        if raw is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, raw.close)
        self._executor.shutdown(wait=True)


# SQLite's primary result codes that are about the database, not about one op's values
_DATABASE_FAULTS = frozenset({
    sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CORRUPT,
    sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED,
    sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_PERM, sqlite3.SQLITE_ABORT,
    sqlite3.SQLITE_INTERRUPT,
})


def is_database_fault(exc: BaseException) -> bool:
    """Whether ``exc`` is the database failing as a whole (disk full, read-only, I/O, corruption, lock)."""
    code = getattr(exc, "sqlite_errorcode", None) if isinstance(exc, sqlite3.Error) else None
    return code is not None and code & 0xFF in _DATABASE_FAULTS


def apply_batch(raw: sqlite3.Connection, ops: list[WriteOp[Any]]) -> list[Outcome]:
    """One transaction for the batch, one savepoint per op: whatever an op raises is its own outcome and
    undoes only its own writes; a fault of the database itself rolls the whole batch back and raises."""
    raw.execute("BEGIN IMMEDIATE")
    try:
        outcomes = [_apply_one(raw, op) for op in ops]
        raw.execute("COMMIT")
    except BaseException:
        if raw.in_transaction:
            raw.execute("ROLLBACK")
        raise
    return outcomes


class OneStatement(Generic[T]):
    """A write op that needs no savepoint of its own: it writes with at most one statement and raises
    only before that statement or when it wrote nothing. SQLite undoes a statement that fails (its
    statement journal), so nothing of such an op can outlive its failure. A send's INSERT is one: the
    savepoint and its release were ~16k of the ~91k instructions the writer spent per send (callgrind)."""

    __slots__ = ("op",)

    def __init__(self, op: WriteOp[T]) -> None:
        self.op = op

    def __call__(self, raw: sqlite3.Connection) -> T:
        return self.op(raw)


def _apply_one(raw: sqlite3.Connection, op: WriteOp[Any]) -> Outcome:
    if isinstance(op, OneStatement):
        try:
            return op.op(raw), None
        except Exception as exc:
            if is_database_fault(exc) or not raw.in_transaction:
                raise
            traceback.clear_frames(exc.__traceback__)  # as below: no cursor may outlive the op
            return None, exc
    raw.execute("SAVEPOINT op")
    try:
        value = op(raw)
    except Exception as exc:
        if is_database_fault(exc) or not raw.in_transaction:  # SQLite may have ended the transaction
            raise
        # a cursor the op left mid-statement lives on in its traceback's frames, and SQLite refuses to
        # RELEASE (or COMMIT) while a write statement is in progress: drop the frames' locals (the
        # traceback keeps its file and line numbers for the log)
        traceback.clear_frames(exc.__traceback__)
        raw.execute("ROLLBACK TO op")
        raw.execute("RELEASE op")
        return None, exc
    raw.execute("RELEASE op")
    return value, None


class GroupCommitWriter:
    def __init__(self, conn: WriteConnection) -> None:
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
        ops = [op for op, _ in batch]
        try:
            outcomes = await self._conn.run(lambda raw: apply_batch(raw, ops))
        except Exception as exc:  # disk full, read-only file, I/O error: nobody gets a false ack
            log.error("database write failed, %d request(s) refused: %s", len(batch), exc)
            error = StorageError(f"database write failed: {exc}")
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), (value, error_) in zip(batch, outcomes, strict=True):
            if future.done():  # the caller went away (cancelled); its write still landed
                continue
            if error_ is not None:
                future.set_exception(error_)
            else:
                future.set_result(value)
