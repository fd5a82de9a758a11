"""``fnotify migrate``: a SQLite database made by the real daemon (deliveries through the loopback
simulators, failures, a link token, a pause, a claim left by a daemon that died mid-attempt) copied by
the real CLI into a real PostgreSQL, where a PostgreSQL daemon carries on from it."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from daemon.core.models import Channel
from daemon.database_url import parse_postgres_url
from daemon.simulators.suite import SimulatorSuite
from daemon.storage import postgres_schema, sqlite_schema
from daemon.storage.schema import latest_version, migrations
from daemon.storage.sqlite import SqliteStore
from tests.conftest import RunningDaemon, make_config, start_daemon, stop_daemon

REPO = Path(__file__).resolve().parent.parent
DEAD = "deadhost:4242:0000"  # a daemon killed while its attempt was in flight
TABLES = ("recipients", "notifications", "attempts", "link_tokens", "sms_sent", "cluster_state")


@dataclass
class Source:
    config: Path
    database: Path
    shown: dict[int, Any] = field(default_factory=dict)  # `show` of each final notification, by the SQLite daemon
    queued: int = 0  # sent while paused: still queued when the daemon stopped
    claimed: int = 0  # held by the dead daemon, its email attempt open


async def fnotify(*args: str) -> tuple[int, str]:
    """The real CLI in a child process; its exit status and stdout + stderr."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "daemon", *args, cwd=str(REPO),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return int(proc.returncode or 0), out.decode()


async def build_source(root: Path, suite: SimulatorSuite, *, full: bool = True) -> Source:
    state = root / "sqlite"
    config = root / "fnotify.toml"
    config.write_text(f'[daemon]\nstate_dir = "{state}"\n')
    source = Source(config, state / "fnotify.db")
    running = await start_daemon(make_config(state, **suite.config_sections()))
    try:
        ann = (await running.call("recipient.add", name="Ann", email="ann@example.com", phone="+14155550100",
                                  telegram_chat_id=1001))["id"]
        bob = (await running.call("recipient.add", name="Bob", email="bob@example.com", timezone="Europe/Moscow",
                                  quiet_hours="22:00-07:00"))["id"]
        await running.call("recipient.update", id=bob, opt_out=["sms"])
        if full:
            await _deliveries(running, suite, source, ann, bob)
        await running.call("recipient.link", id=bob)
        await running.call("pause")
        source.queued = (await running.call("send", recipient_id=ann, message="queued", idempotency_key="k1"))["id"]
        source.claimed = (await running.call("send", recipient_id=ann, message="in flight", chain="email",
                                             priority="critical"))["id"]
    finally:
        await stop_daemon(running)
    # a daemon that took the critical one and died in the middle of its email attempt
    store = SqliteStore(source.database)
    await store.open()
    try:
        now = datetime.now(UTC)
        (held,) = await store.claim_due(now, 1, DEAD, now + timedelta(minutes=5))
        assert held.id == source.claimed
        await store.start_attempt(held.id, Channel.EMAIL, now, 1, DEAD)
    finally:
        await store.close()
    return source


async def _deliveries(running: RunningDaemon, suite: SimulatorSuite, source: Source, ann: int, bob: int) -> None:
    for params in ({"recipient_id": ann, "message": "by telegram"},
                   {"recipient_id": ann, "message": "after a block", "subject": "Disk"},
                   {"recipient_id": bob, "message": "nowhere", "chain": "email", "priority": "high"}):
        if params["message"] == "after a block":
            suite.telegram.faults.inject("blocked", target="1001", count=1)  # Telegram failed, email delivered
        if params["message"] == "nowhere":
            suite.smtp.faults.inject("permanent", target="bob@example.com", count=1)
        sent = await running.call("send", **params)
        final = await running.wait_final(sent["id"])
        source.shown[sent["id"]] = final
    assert [n["status"] for n in source.shown.values()] == ["delivered", "delivered", "failed"]


def sqlite_rows(database: Path, table: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database) as conn:
        key = "token_hash" if table == "link_tokens" else "id"
        return conn.execute(f"SELECT {key} FROM {table} ORDER BY 1").fetchall()


async def pg_fetch(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def pg_tables(url: str) -> list[str]:
    return [r[0] for r in await pg_fetch(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]


def password(url: str) -> str:
    secret = parse_postgres_url(url).password
    assert secret
    return secret


async def test_migrate_copies_every_row_with_its_id_and_a_postgres_daemon_carries_on(
    short_tmp: Path, suite: SimulatorSuite, pg_database: str
) -> None:
    source = await build_source(short_tmp, suite)
    status, out = await fnotify("--config", str(source.config), "migrate", "--to", pg_database)
    assert status == 0, out
    assert password(pg_database) not in out
    assert parse_postgres_url(pg_database).display in out
    assert "claims of the stopped daemon released: 1 notification(s) due again, 1 open attempt(s)" in out
    assert "left out: cluster_members" in out and "the counts match" in out
    for table in TABLES:
        keys = sqlite_rows(source.database, table)
        key = "token_hash" if table == "link_tokens" else "id"
        assert [tuple(r) for r in await pg_fetch(pg_database, f"SELECT {key} FROM {table} ORDER BY 1")] == \
            [(k[0] if table != "cluster_state" else True,) for k in keys], table
        assert f"{table} " in out  # a row of the table printed
    assert len(sqlite_rows(source.database, "attempts")) >= 5

    node = await start_daemon(make_config(short_tmp / "pg", storage={"url": pg_database}, **suite.config_sections()))
    try:
        for nid, shown in source.shown.items():
            assert await node.call("show", id=nid) == shown
        (bob,) = [r for r in await node.call("recipient.list") if r["name"] == "Bob"]
        assert (bob["opt_out"], bob["timezone"], bob["quiet_hours"]) == (["sms"], "Europe/Moscow", "22:00-07:00")
        (ann,) = [r for r in await node.call("recipient.list") if r["name"] == "Ann"]
        assert ann["telegram_state"] == "blocked"  # the flag, 0/1 in SQLite, a boolean now
        assert (await node.call("status"))["paused"] is True  # the pause moved with the data
        await node.call("resume")
        queued = await node.wait_final(source.queued)
        assert queued["status"] == "delivered" and queued["idempotency_key"] == "k1"
        claimed = await node.wait_final(source.claimed)
        assert [(a["channel"], a["outcome"]) for a in claimed["attempts"]] == \
            [("email", "interrupted"), ("email", "delivered")]
        assert claimed["attempts"][0]["error"] == "the daemon stopped while this attempt was in flight"
        new = await node.call("send", recipient_id=ann["id"], message="new")
        assert new["id"] == max(r[0] for r in sqlite_rows(source.database, "notifications")) + 1
        again = await node.call("send", recipient_id=ann["id"], message="queued", idempotency_key="k1")
        assert again["id"] == source.queued and again["created"] is False  # the key still known
        # a PostgreSQL install's backup is PostgreSQL's business: the CLI says so
        status, out = await fnotify("--socket", str(node.config.daemon.socket_path), "backup")
        assert status == 1 and "pg_dump" in out, out
    finally:
        await stop_daemon(node)


async def test_migrate_refuses_a_target_that_holds_data_naming_the_tables(
    short_tmp: Path, suite: SimulatorSuite, pg_database: str
) -> None:
    source = await build_source(short_tmp, suite, full=False)
    assert (await fnotify("--config", str(source.config), "migrate", "--to", pg_database))[0] == 0
    status, out = await fnotify("--config", str(source.config), "migrate", "--to", pg_database)
    assert status == 2, out
    assert "not empty" in out and "notifications" in out and "recipients" in out
    assert password(pg_database) not in out
    assert len(await pg_fetch(pg_database, "SELECT id FROM recipients")) == 2  # nothing copied twice


async def test_migrate_refuses_while_a_daemon_has_the_sqlite_database_open(
    short_tmp: Path, suite: SimulatorSuite, pg_database: str
) -> None:
    source = await build_source(short_tmp, suite, full=False)
    running = await start_daemon(make_config(source.database.parent))
    try:
        status, out = await fnotify("--config", str(source.config), "migrate", "--to", pg_database)
    finally:
        await stop_daemon(running)
    assert status == 2, out
    assert "in use" in out and "Stop it first" in out
    assert await pg_tables(pg_database) == []  # the target was not even touched


async def test_a_bad_url_exits_2_naming_to_and_never_prints_the_password(short_tmp: Path) -> None:
    for url in ("mysql://root:hunter2secret@db/x", "postgresql://root:hunter2secret@db:99999/x",
                "postgresql://root:hunter2secret@db/"):
        status, out = await fnotify("migrate", "--from", str(short_tmp / "fnotify.db"), "--to", url)
        assert status == 2 and out.startswith("fnotify: --to:"), out
        assert "hunter2secret" not in out


async def test_a_wrong_password_exits_2_naming_to_without_the_password(
    short_tmp: Path, suite: SimulatorSuite, pg_database: str
) -> None:
    source = await build_source(short_tmp, suite, full=False)
    wrong = pg_database.replace(password(pg_database), "wrong-Pa55word")
    status, out = await fnotify("migrate", "--from", str(source.database), "--to", wrong)
    assert status == 2 and "--to: cannot connect" in out, out
    assert "wrong-Pa55word" not in out and password(pg_database) not in out


async def test_a_row_that_cannot_be_converted_fails_with_exit_1_and_leaves_the_target_untouched(
    short_tmp: Path, suite: SimulatorSuite, pg_database: str
) -> None:
    source = await build_source(short_tmp, suite, full=False)
    with sqlite3.connect(source.database) as conn:
        conn.execute("UPDATE attempts SET started_at = 1e300")  # no datetime holds it
    status, out = await fnotify("migrate", "--from", str(source.database), "--to", pg_database)
    assert status == 1, out
    assert "attempts.started_at of id 1" in out and "rolled back" in out
    assert await pg_tables(pg_database) == []  # not even the schema: one transaction


async def test_dry_run_prints_what_would_be_copied_and_writes_nothing(
    short_tmp: Path, suite: SimulatorSuite, pg_database: str
) -> None:
    source = await build_source(short_tmp, suite, full=False)
    status, out = await fnotify("migrate", "--dry-run", "--from", str(source.database), "--to", pg_database)
    assert status == 0, out
    assert "would copy" in out and "nothing was written" in out
    assert await pg_tables(pg_database) == []


async def test_a_table_both_schemas_have_is_carried_without_code_and_one_without_a_target_is_refused(
    short_tmp: Path, suite: SimulatorSuite, pg_database: str
) -> None:
    source = await build_source(short_tmp, suite, full=False)
    with sqlite3.connect(source.database) as conn:  # what a later migration (groups, say) might add
        conn.execute("CREATE TABLE extra (id INTEGER PRIMARY KEY, at REAL NOT NULL, on_call INTEGER NOT NULL,"
                     " members TEXT NOT NULL, doc TEXT)")
        conn.execute("INSERT INTO extra VALUES (7, 1700000000.5, 1, 'email,sms', '{\"a\": [1]}')")
    status, out = await fnotify("migrate", "--from", str(source.database), "--to", pg_database)
    assert status == 2 and "extra" in out and "no PostgreSQL table" in out, out
    assert await pg_tables(pg_database) == []

    conn = await asyncpg.connect(pg_database)
    try:
        await postgres_schema.migrate(conn, "test")  # type: ignore[arg-type]
        await conn.execute("CREATE TABLE extra (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
                           " at timestamptz NOT NULL, on_call boolean NOT NULL, members text[] NOT NULL, doc jsonb)")
    finally:
        await conn.close()
    status, out = await fnotify("migrate", "--from", str(source.database), "--to", pg_database)
    assert status == 0, out
    (row,) = await pg_fetch(pg_database, "SELECT id, at, on_call, members, doc::text FROM extra")
    assert tuple(row) == (7, datetime.fromtimestamp(1700000000.5, UTC), True, ["email", "sms"], '{"a": [1]}')
    (new,) = await pg_fetch(pg_database, "INSERT INTO extra (at, on_call, members) VALUES (now(), false, '{}')"
                                         " RETURNING id")
    assert new[0] == 8  # the identity moved past the copied ids


def old_database(path: Path, version: int) -> None:
    """A database as a daemon of schema ``version`` left it: its migrations only, and a few rows."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for migration in migrations("sqlite")[:version]:
            for statement in sqlite_schema.statements(migration.sql):
                conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {sqlite_schema.APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {version}")
        conn.execute("INSERT INTO recipients (id, name, email, created_at) VALUES (3, 'Ann', 'a@example.com', 1.5e9)")
        conn.execute("INSERT INTO notifications (id, recipient_id, text, chain, status, next_attempt_at, created_at,"
                     " updated_at) VALUES (9, 3, ?, 'email,sms', 'queued', 1.5e9, 1.5e9, 1.5e9)", ("old\x00nul",))
    finally:
        conn.close()


async def test_an_older_sqlite_schema_is_upgraded_first_as_run_would_and_a_dry_run_leaves_it(
    short_tmp: Path, pg_database: str
) -> None:
    db = short_tmp / "fnotify.db"
    old_database(db, 3)
    status, out = await fnotify("migrate", "--dry-run", "--from", str(db), "--to", pg_database)
    assert status == 0, out
    assert f"the SQLite schema was version 3: upgraded a copy in memory to {latest_version('sqlite')} first" in out
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    status, out = await fnotify("migrate", "--from", str(db), "--to", pg_database)
    assert status == 0, out
    assert f"the SQLite schema was version 3: upgraded it to {latest_version('sqlite')} first" in out
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == latest_version("sqlite")
    (row,) = await pg_fetch(pg_database, "SELECT id, chain, priority, next_attempt_at, text FROM notifications")
    # a NUL (which the SQLite store let through) cannot go into PostgreSQL text: escaped, and said so
    assert tuple(row) == (9, ["email", "sms"], 1, datetime.fromtimestamp(1.5e9, UTC), "old\\x00nul")
    assert "1 text value(s) held a NUL character" in out


async def test_migrate_refuses_a_target_a_daemon_already_runs_on(
    short_tmp: Path, suite: SimulatorSuite, pg_database: str
) -> None:
    source = await build_source(short_tmp, suite, full=False)
    node = await start_daemon(make_config(short_tmp / "pg", storage={"url": pg_database}))
    try:
        status, out = await fnotify("migrate", "--from", str(source.database), "--to", pg_database)
    finally:
        await stop_daemon(node)
    assert status == 2, out
    assert "cluster_members: a daemon is running on it" in out and password(pg_database) not in out
    assert await pg_fetch(pg_database, "SELECT id FROM recipients") == []
