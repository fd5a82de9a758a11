"""``fnotify backup PATH`` (an online copy through the SQLite backup API, made by the running daemon)
and retention (final notifications older than ``[daemon] retention_days`` are pruned daily)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from daemon.client import RemoteError
from daemon.core.models import utcnow
from daemon.runtime.app import RETENTION_JOB
from tests.conftest import RunningDaemon
from tests.daemon_process import REPO


async def test_backup_makes_a_consistent_copy_that_opens_as_our_database(
    bare_daemon: RunningDaemon, short_tmp: Path
) -> None:
    ann = (await bare_daemon.call("recipient.add", name="Ann"))["id"]
    sent = await bare_daemon.call("send", recipient_id=ann, message="keep me 👋")
    target = short_tmp / "copy.db"
    result = await bare_daemon.call("backup", path=str(target))
    assert result == {"path": str(target), "bytes": target.stat().st_size}
    assert target.stat().st_mode & 0o077 == 0  # private, like the database
    with sqlite3.connect(target) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT text FROM notifications WHERE id = ?", (sent["id"],)).fetchone() == ("keep me 👋",)
        assert db.execute("PRAGMA application_id").fetchone()[0] != 0


@pytest.mark.parametrize(("path", "code"), [("relative.db", "invalid"), ("/nonexistent-dir/x.db", "invalid")])
async def test_backup_refuses_a_relative_path_or_a_missing_directory(
    bare_daemon: RunningDaemon, path: str, code: str
) -> None:
    with pytest.raises(RemoteError) as err:
        await bare_daemon.call("backup", path=path)
    assert err.value.code == code and err.value.field == "path"


async def test_backup_never_overwrites_a_file(bare_daemon: RunningDaemon, short_tmp: Path) -> None:
    precious = short_tmp / "precious"
    precious.write_text("do not touch")
    with pytest.raises(RemoteError) as err:
        await bare_daemon.call("backup", path=str(precious))
    assert err.value.code == "conflict"
    assert precious.read_text() == "do not touch"


async def test_the_backup_command_resolves_a_relative_path_against_the_callers_directory(
    bare_daemon: RunningDaemon, short_tmp: Path
) -> None:
    workdir = short_tmp / "here"
    workdir.mkdir()
    proc = await asyncio.create_subprocess_exec(  # not subprocess.run: the daemon shares this event loop
        sys.executable, "-m", "daemon", "--socket", str(bare_daemon.config.daemon.socket_path), "backup", "b.db",
        cwd=workdir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode == 0, err.decode()
    assert f"backed up to {workdir / 'b.db'}" in out.decode()
    assert (workdir / "b.db").stat().st_size > 0


async def test_retention_prunes_only_final_notifications_older_than_retention_days(
    bare_daemon: RunningDaemon,
) -> None:
    ann = (await bare_daemon.call("recipient.add", name="Ann"))["id"]
    old_final = await bare_daemon.call("send", recipient_id=ann, message="old and failed")
    await bare_daemon.wait_final(old_final["id"])
    new_final = await bare_daemon.call("send", recipient_id=ann, message="recent")
    await bare_daemon.wait_final(new_final["id"])
    await bare_daemon.call("pause")  # keeps the next one queued: not final, so never pruned
    old_pending = await bare_daemon.call("send", recipient_id=ann, message="old but still queued")
    store = bare_daemon.daemon.store
    aged = (utcnow() - timedelta(days=91)).timestamp()
    conn = store._write  # age two rows by hand
    assert conn is not None
    await conn.execute("UPDATE notifications SET updated_at = ? WHERE id IN (?, ?)",
                       (aged, old_final["id"], old_pending["id"]))

    assert await bare_daemon.daemon.service.prune() == 1
    remaining = {n["text"] for n in await bare_daemon.call("list")}
    assert remaining == {"old but still queued", "recent"}
    with sqlite3.connect(bare_daemon.config.daemon.database) as db:  # its attempts went with it
        assert db.execute("SELECT count(*) FROM attempts WHERE notification_id = ?",
                          (old_final["id"],)).fetchone() == (0,)


async def test_the_retention_job_is_scheduled_daily(bare_daemon: RunningDaemon) -> None:
    job = bare_daemon.daemon.engine._scheduler.get_job(RETENTION_JOB)
    assert job is not None and job.trigger.interval == timedelta(days=1)
