"""Schemas and their versions: a version-1 SQLite file upgrades in place; PostgreSQL daemons starting at
once on an empty database make one schema; a foreign or newer database is refused; and the SQLite store
knows at once when the daemon that held claims in its file is gone."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from daemon.core.errors import StorageError, ValidationError
from daemon.core.models import (
    FINAL_STATUSES,
    AttemptRecord,
    Channel,
    NewNotification,
    NotificationUpdate,
    Outcome,
    Priority,
    Status,
)
from daemon.database_url import parse_postgres_url
from daemon.storage.postgres import BackupUnsupported, PostgresStore
from daemon.storage.schema import migrations
from daemon.storage.sqlite import SqliteStore

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# -- SQLite ----------------------------------------------------------------------------------------------

def write_version_1(path: Path) -> None:
    """A database as the first release left it (before awaiting_ack, even): one queued notification, one
    in flight with its attempt open when that daemon was killed, one delivered."""
    v1 = migrations("sqlite")[0].sql.replace(
        "    awaiting_ack     INTEGER NOT NULL DEFAULT 0,     -- delivered on Telegram, waiting for \"Got it\""
        " until next_attempt_at\n", "")
    assert "awaiting_ack" not in v1
    ts = T0.timestamp()
    with sqlite3.connect(path) as db:
        db.executescript(v1)
        db.execute("PRAGMA application_id = 1718513524")
        db.execute("PRAGMA user_version = 1")
        db.execute("INSERT INTO recipients (id, name, email, created_at) VALUES (1, 'Ann', 'ann@example.com', ?)",
                   (ts,))
        for nid, status, in_flight, due in ((1, "queued", 0, ts), (2, "sending", 1, ts), (3, "delivered", 0, None)):
            db.execute("INSERT INTO notifications (id, recipient_id, text, chain, status, in_flight, next_attempt_at,"
                       " created_at, updated_at, tries) VALUES (?, 1, ?, 'email,sms', ?, ?, ?, ?, ?, 1)",
                       (nid, f"v1 message {nid}", status, in_flight, due, ts, ts))
        db.execute("INSERT INTO attempts (notification_id, channel, started_at) VALUES (2, 'email', ?)", (ts,))
        db.execute("INSERT INTO attempts (notification_id, channel, outcome, started_at, finished_at)"
                   " VALUES (3, 'email', 'delivered', ?, ?)", (ts, ts))


async def test_a_version_1_sqlite_database_upgrades_in_place_and_keeps_everything(short_tmp: Path) -> None:
    path = short_tmp / "fnotify.db"
    write_version_1(path)
    store = SqliteStore(path)
    await store.open()
    try:
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == len(migrations("sqlite"))
            columns = {row[1] for row in db.execute("PRAGMA table_info(notifications)")}
        assert {"claimed_by", "lease_until", "awaiting_ack", "priority"} <= columns and "in_flight" not in columns
        assert [n.text for n in await store.list_notifications()] == ["v1 message 3", "v1 message 2", "v1 message 1"]
        assert {n.priority for n in await store.list_notifications()} == {Priority.NORMAL}  # version 3's default
        # the row the version-1 daemon held is retried, its open attempt recorded interrupted
        assert await store.recover_interrupted(at(5), "new-host:1:cafe") == 1
        claimed = await store.claim_due(at(5), 10, "new-host:1:cafe", at(35))
        assert sorted(n.id for n in claimed) == [1, 2]
        shown = await store.get_notification(2)
        assert shown is not None and [a.outcome for a in shown.attempts] == [Outcome.INTERRUPTED]
    finally:
        await store.close()
    again = SqliteStore(path)  # opening an up-to-date file changes nothing
    await again.open()
    await again.close()


async def test_a_restarted_sqlite_daemon_retries_its_dead_predecessors_claims_at_once(short_tmp: Path) -> None:
    path = short_tmp / "fnotify.db"
    first = SqliteStore(path)
    await first.open()
    ann = await first.add_recipient("Ann", None, None, None)
    n, _ = await first.create_notification(NewNotification(ann.id, "x", (Channel.EMAIL,)), at(0))
    await first.claim_due(at(0), 10, "old:1:aaaa", at(3600))  # a lease far from expiring
    await first.start_attempt(n.id, Channel.EMAIL, at(1), 1, "old:1:aaaa")

    beside = SqliteStore(path)  # opened while the first is still open: it must leave that claim alone
    await beside.open()
    assert await beside.recover_interrupted(at(2), "beside:2:bbbb") == 0
    await beside.close()
    await first.close()  # the old daemon is gone (its flock with it, as on kill -9)

    restarted = SqliteStore(path)
    await restarted.open()
    try:
        assert await restarted.recover_interrupted(at(2), "new:3:cccc") == 1
        shown = await restarted.get_notification(n.id)
        assert shown is not None and shown.attempts[0].error == "the daemon stopped while this attempt was in flight"
        assert [x.id for x in await restarted.claim_due(at(2), 10, "new:3:cccc", at(32))] == [n.id]
    finally:
        await restarted.close()


def test_the_migrations_name_the_final_statuses_and_outcomes_the_code_uses() -> None:
    postgres = "\n".join(m.sql for m in migrations("postgres"))  # a later file may widen the status check
    for status in Status:
        assert f"'{status}'" in postgres
    final_list = ", ".join(f"'{s}'" for s in Status if s in FINAL_STATUSES)
    assert f"n.status IN ({final_list})" in postgres
    assert f"outcome = '{Outcome.INTERRUPTED}'" in postgres


# -- PostgreSQL ------------------------------------------------------------------------------------------

def pg(url: str) -> PostgresStore:
    return PostgresStore(parse_postgres_url(url))


async def test_postgres_daemons_starting_at_once_on_an_empty_database_make_one_schema(pg_database: str) -> None:
    stores = [pg(pg_database) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        conn = await asyncpg.connect(pg_database)
        try:
            rows = await conn.fetch("SELECT version, name FROM schema_version ORDER BY version")
        finally:
            await conn.close()
        assert [(r["version"], r["name"]) for r in rows] == [(m.version, m.name) for m in migrations("postgres")]
        ann = await stores[3].add_recipient("Ann", None, None, None)
        assert await stores[0].get_recipient(ann.id) == ann
    finally:
        for store in stores:
            await store.close()


async def test_a_postgres_database_holding_other_tables_is_refused_and_left_alone(pg_database: str) -> None:
    conn = await asyncpg.connect(pg_database)
    try:
        await conn.execute("CREATE TABLE invoices (id integer PRIMARY KEY)")
        with pytest.raises(StorageError, match=r"invoices.*database of its own"):
            await pg(pg_database).open()
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        assert [r["tablename"] for r in tables] == ["invoices"]
    finally:
        await conn.close()


async def test_a_postgres_schema_newer_than_the_daemon_is_refused(pg_database: str) -> None:
    store = pg(pg_database)
    await store.open()
    await store.close()
    conn = await asyncpg.connect(pg_database)
    try:
        await conn.execute("INSERT INTO schema_version (version, name) VALUES (99, 'from_the_future')")
    finally:
        await conn.close()
    with pytest.raises(StorageError, match="schema version 99 is newer"):
        await pg(pg_database).open()


async def test_backup_on_postgres_is_refused_pointing_at_pg_dump(pg_database: str, short_tmp: Path) -> None:
    store = pg(pg_database)
    await store.open()
    try:
        with pytest.raises(BackupUnsupported, match="pg_dump") as err:
            await store.backup(short_tmp / "copy.db")
        assert err.value.code == "unsupported"
        assert not (short_tmp / "copy.db").exists()
    finally:
        await store.close()


async def test_postgres_refuses_a_nul_in_sent_text_by_name_and_escapes_one_in_a_provider_error(
    pg_database: str,
) -> None:
    store = pg(pg_database)
    await store.open()
    try:
        ann = await store.add_recipient("Ann", None, None, None)
        with pytest.raises(ValidationError) as err:
            await store.create_notification(NewNotification(ann.id, "a\x00b", (Channel.EMAIL,)), at(0))
        assert err.value.field == "message"
        with pytest.raises(ValidationError, match="NUL"):
            await store.add_recipient("B\x00b", None, None, None)
        assert await store.list_notifications(search="\x00") == []
        n, _ = await store.create_notification(NewNotification(ann.id, "ok", (Channel.EMAIL,)), at(0))
        await store.claim_due(at(0), 1, "a:1:a", at(30))
        record = AttemptRecord(Outcome.RETRY, "550 \x00 odd \ud800 reply")
        await store.finish_attempt(None, n.id, Channel.EMAIL, record, NotificationUpdate(Status.QUEUED, 0, 0, at(9)),
                                   at(1), "a:1:a")
        shown = await store.get_notification(n.id)
        assert shown is not None and shown.attempts[0].error == "550 \\x00 odd \\ud800 reply"
    finally:
        await store.close()
