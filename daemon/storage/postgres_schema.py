"""Connecting to PostgreSQL and bringing its schema up to date, safely when several daemons start at once.

``migrate`` runs under ``pg_advisory_lock``: the first daemon applies what is missing while the others
wait, then find nothing left to do. Each ``migrations/postgres/NNNN_*.sql`` runs in one transaction with
its row in ``schema_version``. A database that holds other tables but no ``schema_version`` is refused:
failover-notify wants a database of its own, and never writes into someone else's.

``translate`` maps asyncpg's and the network's errors onto ours at this boundary: a unique violation is
a ``Conflict``, anything else a ``StorageError`` (``storage`` to clients, 503 over HTTP).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING

import asyncpg

from daemon.core.errors import Conflict, FnotifyError, StorageError, StorageUnreachable
from daemon.database_url import PostgresUrl
from daemon.storage.schema import migrations

if TYPE_CHECKING:
    from daemon.storage.postgres_writes import Conn

log = logging.getLogger(__name__)

LOCK_KEY = 0x666E6F74  # "fnot": the advisory lock that serialises schema upgrades
CONNECT_TIMEOUT = 10.0
COMMAND_TIMEOUT = 30.0  # a statement that takes longer than this fails (the server went away, say)
POOL_SIZE = 16
DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError)


def describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


@contextmanager
def translate(what: str = "database operation") -> Iterator[None]:
    """Our errors pass through; the driver's become ``Conflict`` (unique violations) or ``StorageError``."""
    try:
        yield
    except FnotifyError:
        raise
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(exc.detail or describe(exc)) from None
    except DRIVER_ERRORS as exc:
        raise StorageError(f"{what} failed: {describe(exc)}") from None


def server_settings(owner: str | None, role: str = "failover-notify") -> dict[str, str]:
    """Session settings of our connections: ``fnotify.daemon`` names the daemon in the NOTIFY hints its
    writes send (migrations/postgres/0003_cluster.sql), so that it can ignore its own."""
    settings = {"application_name": role}
    if owner is not None:
        settings["fnotify.daemon"] = owner
    return settings


async def keep_session(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """The pool's reset on release, instead of asyncpg's default query (advisory unlock, CLOSE ALL,
    UNLISTEN *, RESET ALL): one more round trip per use of the pool, a fifth of a send's time on a busy
    machine. Our pooled sessions keep no state to undo: no SET (the settings are the connection's startup
    parameters), no LISTEN (the listener has a connection of its own), no cursor outside a transaction,
    and the schema's advisory lock is released where it is taken. An open transaction is still rolled
    back by asyncpg before this is called."""


async def connect_pool(url: PostgresUrl, owner: str | None = None) -> asyncpg.Pool[asyncpg.Record]:
    """A pool on ``url``; StorageUnreachable (naming ``[storage] url``, never the password) when the
    server refuses or does not answer."""
    try:
        pool = await asyncpg.create_pool(
            url.dsn, min_size=1, max_size=POOL_SIZE, timeout=CONNECT_TIMEOUT, command_timeout=COMMAND_TIMEOUT,
            server_settings=server_settings(owner), reset=keep_session,
        )
    except (*DRIVER_ERRORS, ValueError) as exc:
        raise StorageUnreachable(
            f"[storage] url: cannot connect to PostgreSQL at {url.display}: {describe(exc)}"
        ) from None
    return pool


async def probe(url: PostgresUrl) -> str:
    """For ``fnotify check``: connect, read the server's version and the schema's; change nothing."""
    try:
        conn = await asyncpg.connect(url.dsn, timeout=CONNECT_TIMEOUT)
    except (*DRIVER_ERRORS, ValueError) as exc:
        raise StorageUnreachable(f"cannot connect: {describe(exc)}") from None
    try:
        with translate("reading the schema version"):
            server = await conn.fetchval("SHOW server_version")
            version = 0
            if await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL"):
                version = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
    finally:
        await conn.close()
    latest = len(migrations("postgres"))
    if version == 0:
        schema = "no schema yet (fnotify run creates it)"
    elif version < latest:
        schema = f"schema version {version} (fnotify run upgrades it to {latest})"
    elif version == latest:
        schema = f"schema version {version}"
    else:
        raise StorageError(f"schema version {version} is newer than this daemon ({latest})")
    return f"PostgreSQL {server.split()[0]} at {url.display}, {schema}"


async def migrate(conn: Conn, display: str) -> int:
    """Apply the migrations the database lacks, under the advisory lock; returns the schema version."""
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        return await _migrate_locked(conn, display)
    finally:
        with suppress(*DRIVER_ERRORS):  # when the connection is gone, its advisory locks went with it
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)


async def _migrate_locked(conn: Conn, display: str) -> int:
    available = migrations("postgres")
    if not await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL"):
        foreign = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename LIMIT 5"
        )
        if foreign:
            names = ", ".join(r["tablename"] for r in foreign)
            raise StorageError(f"[storage] url: {display} holds other tables ({names}) and no failover-notify"
                               " schema: give failover-notify a database of its own")
        await conn.execute(
            "CREATE TABLE schema_version (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
    current: int = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
    if current > len(available):
        raise StorageError(f"{display}: schema version {current} is newer than this daemon ({len(available)})")
    for migration in available[current:]:
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute("INSERT INTO schema_version (version, name) VALUES ($1, $2)",
                               migration.version, migration.name)
        log.info("PostgreSQL schema of %s upgraded to version %d (%s)", display, migration.version, migration.name)
        current = migration.version
    return current
