"""``fnotify migrate``: copy a stopped SQLite database into an empty PostgreSQL database.

The source is read in one SQLite read transaction while this process holds ``<database>.lock``
exclusively (``sqlite_claims.OwnerPresence``: every open store holds it shared), so no daemon writes
it meanwhile. Everything on the target happens in one PostgreSQL transaction, under the advisory lock
daemons take to upgrade the schema: the normal migrations (as ``fnotify run`` applies them), the check
that every table is empty, a ``COPY`` per table, the identity sequences moved past the copied ids, the
row counts compared. Any error rolls all of it back; ``dry_run`` rolls back after the counts.

The tables are found, not listed: each table of the source is copied into the PostgreSQL table of the
same name, the columns both have, converted by the target column's type (``transfer_values``). A
source table with no target is refused (its rows would be lost); ``LEFT_OUT`` names what must not move.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import asyncpg

from daemon.core.errors import StorageError
from daemon.storage import postgres_schema, sqlite_schema
from daemon.storage.schema import latest_version
from daemon.storage.sqlite_claims import OwnerPresence
from daemon.storage.transfer_values import Converter, converter, release_claims

if TYPE_CHECKING:
    from daemon.storage.postgres_writes import Conn

__all__ = ["LEFT_OUT", "Copied", "Source", "TransferFailed", "TransferRefused", "locked", "open_source", "transfer"]

LEFT_OUT = {
    "cluster_members": "the daemons running now: each target daemon adds its own",
    "cluster_leaders": "leader leases: the target's daemons elect their own",
}
"""Tables whose rows describe the daemons of the old install, not its data."""
SEEDED = frozenset({"cluster_state"})
"""Tables a migration fills with one row (``paused``...): the source's row replaces it."""
BATCH = 5000


class TransferRefused(Exception):
    """Nothing was written: the input or the target's state says no (``fnotify migrate`` exits 2)."""


class TransferFailed(Exception):
    """Something went wrong while copying; the target's transaction was rolled back (exit 1)."""


@dataclass(slots=True)
class Source:
    """An open source database and what was done to it before the copy."""

    path: Path
    conn: sqlite3.Connection
    version: int
    upgraded_from: int | None = None  # the schema version it had, when it was upgraded first


@dataclass(slots=True)
class Copied:
    """What ``transfer`` did: rows per table copied, rows left out, claims released."""

    tables: dict[str, int] = field(default_factory=dict)
    left_out: dict[str, int] = field(default_factory=dict)
    released: int = 0  # notifications a stopped daemon held, due again
    interrupted: int = 0  # their open attempts, recorded interrupted
    escaped: int = 0  # text values holding a NUL, which PostgreSQL text cannot: written as the escape \\x00
    created_schema: int | None = None  # the target's schema version before, when migrations ran
    seconds: float = 0.0


@contextlib.contextmanager
def locked(database: Path) -> Iterator[None]:
    """Hold ``<database>.lock`` exclusively, or refuse: a daemon has the database open. A database no
    daemon of this version ever opened has no lock file (none is made here: made by another user, it
    would keep the daemon from opening its own database)."""
    lock = OwnerPresence(database).path
    if not lock.exists():
        yield
        return
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise TransferRefused(f"{lock}: cannot open the lock file: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TransferRefused(
                f"{database} is in use: a daemon holds {lock}. Stop it first (systemctl stop failover-notify), then run"
                " migrate again"
            ) from None
        except OSError:
            pass  # no flock on this file system: the daemon cannot use it either (sqlite_claims.OwnerPresence)
        yield
    finally:
        os.close(fd)  # drops the lock


def open_source(path: Path, *, dry_run: bool) -> Source:
    """Open the SQLite database at ``path``, upgraded to the latest schema as ``fnotify run`` would. A
    dry run upgrades a copy in memory and leaves the file as it is."""
    if not path.is_file():
        raise TransferRefused(f"{path}: no such SQLite database")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        sqlite_schema.check_identity(conn, path)
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            raise TransferRefused(f"{path}: an empty database, nothing to migrate")
        source = Source(path, conn, version)
        if version < latest_version("sqlite"):
            if dry_run:
                memory = sqlite3.connect(":memory:", isolation_level=None)
                memory.row_factory = sqlite3.Row
                conn.backup(memory)
                conn.close()
                source.conn = conn = memory
            sqlite_schema.prepare(conn, path)
            source.upgraded_from, source.version = version, latest_version("sqlite")
    except StorageError as exc:
        conn.close()
        raise TransferRefused(str(exc)) from None
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise TransferRefused(f"{path}: cannot read the database: {exc}") from None
    except BaseException:
        conn.close()
        raise
    return source


@dataclass(frozen=True, slots=True)
class _Table:
    name: str
    columns: tuple[str, ...]
    converters: tuple[Converter, ...]
    types: tuple[str, ...]


async def transfer(source: Source, conn: asyncpg.Connection[Any], display: str, now: datetime,
                   *, dry_run: bool = False) -> Copied:
    """Copy ``source`` into the database of ``conn`` (``display``: its URL without the password) in one
    transaction; ``now`` is when released claims become due. TransferRefused before any row is written."""
    started = time.monotonic()
    copied = Copied()
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", postgres_schema.LOCK_KEY)  # daemons wait for us
        before = await _schema_version(conn)
        try:
            # typed for the pool's connection proxy, which has the same methods as the connection it wraps
            await postgres_schema.migrate(cast("Conn", conn), display)
        except StorageError as exc:
            raise TransferRefused(str(exc)) from None
        if before < latest_version("postgres"):
            copied.created_schema = before
        tables = await _plan(source.conn, conn)
        await _refuse_data(conn)
        source.conn.execute("BEGIN")  # one snapshot of the source
        try:
            copied.left_out = {t: _count(source.conn, t) for t in LEFT_OUT if _has_table(source.conn, t)}
            claimed = {r[0] for r in source.conn.execute(
                "SELECT id FROM notifications WHERE claimed_by IS NOT NULL").fetchall()}
            copied.released = len(claimed)
            for table in tables:
                copied.tables[table.name] = await _copy(source.conn, conn, table, claimed, now.timestamp(), copied)
        finally:
            source.conn.execute("ROLLBACK")
        await _reset_identities(conn, [t.name for t in tables])
        await _check_counts(conn, copied.tables)
    except BaseException:
        with contextlib.suppress(*postgres_schema.DRIVER_ERRORS):  # a lost connection rolled it back already
            await tx.rollback()
        raise
    if dry_run:
        await tx.rollback()
    else:
        await tx.commit()
    copied.seconds = time.monotonic() - started
    return copied


async def _schema_version(conn: asyncpg.Connection[Any]) -> int:
    if not await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL"):
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version"))


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def _count(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])


async def _plan(source: sqlite3.Connection, conn: asyncpg.Connection[Any]) -> list[_Table]:
    """The tables to copy, parents before children (foreign keys), with their common columns; refuses a
    source table or column PostgreSQL has no place for, and a required target column the source lacks."""
    names = [r[0] for r in source.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").fetchall()]
    target = {r["tablename"] for r in await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
    missing = [n for n in names if n not in target and n not in LEFT_OUT]
    if missing:
        raise TransferRefused(f"the SQLite table(s) {', '.join(missing)} have no PostgreSQL table to go to:"
                              " this version of fnotify cannot move them")
    plans = []
    for name in (n for n in await _parents_first(conn, names) if n not in LEFT_OUT):
        plans.append(await _plan_table(source, conn, name))
    return plans


async def _plan_table(source: sqlite3.Connection, conn: asyncpg.Connection[Any], name: str) -> _Table:
    have = [r[1] for r in source.execute(f'PRAGMA table_info("{name}")').fetchall()]
    rows = await conn.fetch(
        "SELECT attname, format_type(atttypid, atttypmod) AS type, attnotnull AND NOT atthasdef"
        " AND attidentity = '' AS required FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0"
        " AND NOT attisdropped ORDER BY attnum", f'"{name}"')
    types = {r["attname"]: r["type"] for r in rows}
    lost = [c for c in have if c not in types]
    if lost:
        raise TransferRefused(f"{name}: the SQLite column(s) {', '.join(lost)} have no PostgreSQL column to go to")
    lacking = [r["attname"] for r in rows if r["required"] and r["attname"] not in have]
    if lacking:
        raise TransferRefused(f"{name}: PostgreSQL requires {', '.join(lacking)}, which the SQLite table lacks")
    columns = tuple(c for c in types if c in have)  # the target's order
    converters = []
    for column in columns:
        convert = converter(types[column])
        if convert is None:
            raise TransferRefused(f"{name}.{column}: no conversion from SQLite to PostgreSQL {types[column]}")
        converters.append(convert)
    return _Table(name, columns, tuple(converters), tuple(types[c] for c in columns))


async def _parents_first(conn: asyncpg.Connection[Any], names: list[str]) -> list[str]:
    edges = await conn.fetch(
        "SELECT c.relname AS child, p.relname AS parent FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid"
        " JOIN pg_class p ON p.oid = k.confrelid"
        " WHERE k.contype = 'f' AND k.connamespace = current_schema()::regnamespace")
    parents: dict[str, set[str]] = {n: set() for n in names}
    for edge in edges:
        if edge["child"] in parents and edge["parent"] in parents and edge["child"] != edge["parent"]:
            parents[edge["child"]].add(edge["parent"])
    ordered: list[str] = []
    while parents:
        ready = sorted(n for n, needs in parents.items() if not needs - set(ordered))
        if not ready:
            raise TransferRefused(f"the foreign keys between {', '.join(sorted(parents))} form a cycle")
        ordered += ready
        for n in ready:
            del parents[n]
    return ordered


async def _refuse_data(conn: asyncpg.Connection[Any]) -> None:
    tables = [r["tablename"] for r in await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename")]
    full = [t for t in tables if t != "schema_version" and t not in SEEDED
            and await conn.fetchval(f'SELECT EXISTS (SELECT 1 FROM "{t}")')]
    if full:
        running = " (cluster_members: a daemon is running on it)" if "cluster_members" in full else ""
        raise TransferRefused(f"the target database is not empty: {', '.join(full)} "
                              f"{'has rows' if len(full) == 1 else 'have rows'}{running}. migrate copies into an"
                              " empty database only: create a new one (or drop this one's tables) and run it again")


async def _copy(source: sqlite3.Connection, conn: asyncpg.Connection[Any], table: _Table, claimed: set[int],
                now: float, copied: Copied) -> int:
    if table.name in SEEDED:
        await conn.execute(f'DELETE FROM "{table.name}"')
    names = ", ".join(f'"{c}"' for c in table.columns)
    cursor = source.execute(f'SELECT {names} FROM "{table.name}"')
    release = _releaser(table, claimed, now, copied)
    converters = tuple(_counting_nul(c, copied) if "text" in t or "character" in t else c
                       for c, t in zip(table.converters, table.types, strict=True))
    total = 0
    while batch := cursor.fetchmany(BATCH):
        if release is not None:
            batch = [release(raw) for raw in batch]
        try:  # the fast way; the slow one only to name the value that failed
            records = [tuple([None if v is None else c(v) for c, v in zip(converters, raw, strict=True)])
                       for raw in batch]
        except _CONVERSION_ERRORS:
            for raw in batch:
                _convert_row(table, raw)
            raise
        await conn.copy_records_to_table(table.name, records=records, columns=list(table.columns))
        total += len(records)
    return total


_CONVERSION_ERRORS = (ValueError, TypeError, OverflowError, OSError)


def _counting_nul(convert: Converter, copied: Copied) -> Converter:
    """SQLite stores a NUL in text, PostgreSQL cannot: it is written as the escape ``\\x00`` (as the
    PostgreSQL store writes the text it makes itself, postgres_writes.clean), counted for the report;
    refusing it would leave the whole install behind."""
    def run(value: Any) -> Any:
        if isinstance(value, str) and "\x00" in value:
            copied.escaped += 1
            value = value.replace("\x00", "\\x00")
        return convert(value)
    return run


def _releaser(table: _Table, claimed: set[int], now: float, copied: Copied) -> Callable[[Any], Any] | None:
    """For the rows a stopped daemon held (few): its claims released, as ``transfer_values.release_claims``."""
    if not claimed or table.name not in ("notifications", "attempts"):
        return None
    at = {c: i for i, c in enumerate(table.columns)}

    def release(raw: Any) -> Any:
        if table.name == "notifications":
            if raw[at["claimed_by"]] is None:
                return raw
        elif raw[at["notification_id"]] not in claimed or raw[at["finished_at"]] is not None:
            return raw
        else:
            copied.interrupted += 1
        row = dict(zip(table.columns, raw, strict=True))
        release_claims(table.name, row, claimed, now)
        return tuple(row.values())

    return release


def _convert_row(table: _Table, raw: Any) -> None:
    """Convert one row the slow way; TransferFailed names the table, column and row of a value that fails."""
    for column, convert, pg_type, value in zip(table.columns, table.converters, table.types, raw, strict=True):
        try:
            if value is not None:
                convert(value)
        except _CONVERSION_ERRORS as exc:
            key = f"id {raw[table.columns.index('id')]}" if "id" in table.columns else "a row"
            raise TransferFailed(f"{table.name}.{column} of {key}: cannot convert a SQLite {type(value).__name__}"
                                 f" to PostgreSQL {pg_type}: {exc}") from None


async def _reset_identities(conn: asyncpg.Connection[Any], tables: list[str]) -> None:
    """Move each identity (or serial) sequence past the largest id copied: the next row gets a new id."""
    for table in tables:
        for row in await conn.fetch(
                "SELECT attname, pg_get_serial_sequence($2, attname) AS seq FROM pg_attribute WHERE"
                " attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped", f'"{table}"', f'"{table}"'):
            if row["seq"] is not None:
                column = row["attname"]
                await conn.execute(f'SELECT setval($1, coalesce(max("{column}"), 0) + 1, false) FROM "{table}"',
                                   row["seq"])


async def _check_counts(conn: asyncpg.Connection[Any], tables: dict[str, int]) -> None:
    for table, expected in tables.items():
        found = await conn.fetchval(f'SELECT count(*) FROM "{table}"')
        if found != expected:
            raise TransferFailed(f"{table}: {expected} rows read from SQLite but {found} in PostgreSQL")
