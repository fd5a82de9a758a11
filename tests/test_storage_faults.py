"""Storage faults: a database that refuses writes makes ``send`` fail with a ``storage`` error (never a
false acknowledgement) while reads go on; a foreign or corrupt database file is refused at start."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from daemon.client import RemoteError
from tests.conftest import RunningDaemon, make_config, start_daemon, stop_daemon
from tests.daemon_process import REPO


@pytest.fixture
async def daemon(short_tmp: Path) -> AsyncIterator[RunningDaemon]:
    running = await start_daemon(make_config(short_tmp))
    yield running
    await stop_daemon(running)


async def writer_pragma(daemon: RunningDaemon, pragma: str) -> None:
    """Reach into the store's write connection: the fault a full disk or a read-only file causes."""
    conn = daemon.daemon.store._write  # fault injection
    assert conn is not None
    await conn.run(lambda raw: raw.execute(pragma))


async def test_a_read_only_database_refuses_send_with_a_storage_error_and_reads_go_on(daemon: RunningDaemon) -> None:
    ann = (await daemon.call("recipient.add", name="Ann"))["id"]
    first = await daemon.call("send", recipient_id=ann, message="stored before the fault", chain=["email"])
    await daemon.wait_final(first["id"])
    await writer_pragma(daemon, "PRAGMA query_only = ON")  # SQLite answers as for a read-only file

    with pytest.raises(RemoteError) as err:
        await daemon.call("send", recipient_id=ann, message="must not be acknowledged")
    assert err.value.code == "storage" and "readonly" in str(err.value)

    listing = await daemon.call("list")
    assert [n["text"] for n in listing] == ["stored before the fault"]  # nothing half-written
    assert (await daemon.call("show", id=first["id"]))["status"] == "failed"
    assert (await daemon.call("status"))["counts"] == {"failed": 1}
    assert [r["name"] for r in await daemon.call("recipient.list")] == ["Ann"]

    await writer_pragma(daemon, "PRAGMA query_only = OFF")  # the fault goes away: sends work again
    again = await daemon.call("send", recipient_id=ann, message="after the fault", chain=["email"])
    assert (await daemon.wait_final(again["id"]))["status"] == "failed"  # email is disabled in this daemon


async def test_a_full_disk_refuses_send_with_a_storage_error(daemon: RunningDaemon) -> None:
    ann = (await daemon.call("recipient.add", name="Ann"))["id"]
    await writer_pragma(daemon, "PRAGMA max_page_count = 1")  # SQLite caps it at the current size
    with pytest.raises(RemoteError) as err:
        await daemon.call("send", recipient_id=ann, message="x" * 60_000)
    assert err.value.code == "storage" and "full" in str(err.value)
    assert await daemon.call("list") == []
    assert await daemon.call("ping") == "pong"


def run_daemon(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon", "--config", str(config), "run"], cwd=REPO,
                          capture_output=True, text=True, timeout=20)


def write_config(short_tmp: Path) -> Path:
    config = short_tmp / "fnotify.toml"
    config.write_text(f'[daemon]\nstate_dir = "{short_tmp}"\n')
    return config


def test_a_foreign_sqlite_database_is_refused_at_start_with_a_clear_message(short_tmp: Path) -> None:
    with sqlite3.connect(short_tmp / "fnotify.db") as db:
        db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, amount REAL)")
    result = run_daemon(write_config(short_tmp))
    assert result.returncode != 0
    assert "not a failover-notify database" in result.stderr
    with sqlite3.connect(short_tmp / "fnotify.db") as db:  # and it was not written into
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["invoices"]


def test_a_garbage_file_is_refused_at_start_with_a_clear_message(short_tmp: Path) -> None:
    (short_tmp / "fnotify.db").write_bytes(b"this is not SQLite at all\n" * 200)
    result = run_daemon(write_config(short_tmp))
    assert result.returncode != 0
    assert "cannot open the database" in result.stderr and "not a database" in result.stderr
