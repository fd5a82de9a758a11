"""``fnotify backup PATH`` (an online copy through the SQLite backup API, made by the running daemon)
and retention (final notifications older than ``[daemon] retention_days`` are pruned daily)."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from daemon.api.sandbox import private_tmp_dirs
from daemon.client import DaemonClient, RemoteError
from daemon.core.models import utcnow
from daemon.runtime.app import RETENTION_JOB
from daemon.storage import sqlite_maintenance
from tests.conftest import RunningDaemon
from tests.daemon_process import REPO, DaemonProcess, write_config


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
    await conn.run(lambda raw: raw.execute("UPDATE notifications SET updated_at = ? WHERE id IN (?, ?)",
                                           (aged, old_final["id"], old_pending["id"])))

    assert await bare_daemon.daemon.service.prune() == 1
    remaining = {n["text"] for n in await bare_daemon.call("list")}
    assert remaining == {"old but still queued", "recent"}
    with sqlite3.connect(bare_daemon.config.daemon.database) as db:  # its attempts went with it
        assert db.execute("SELECT count(*) FROM attempts WHERE notification_id = ?",
                          (old_final["id"],)).fetchone() == (0,)


async def test_the_retention_job_is_scheduled_daily(bare_daemon: RunningDaemon) -> None:
    job = bare_daemon.daemon.engine._scheduler.get_job(RETENTION_JOB)
    assert job is not None and job.trigger.interval == timedelta(days=1)


# -- where backups may go, and how they are written --------------------------------------------------

async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not check():
            await asyncio.sleep(0.005)


async def test_a_backup_in_progress_shows_no_half_written_file_under_its_name_and_reads_go_on(
    bare_daemon: RunningDaemon, short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_maintenance, "BACKUP_PAGES_PER_STEP", 4, raising=False)  # many small steps
    ann = (await bare_daemon.call("recipient.add", name="Ann"))["id"]
    await bare_daemon.call("pause")
    await asyncio.gather(*(bare_daemon.call("send", recipient_id=ann, message=f"{i} " + "x" * 8000)
                           for i in range(300)))  # ~2.5 MB: some 150 steps
    target = short_tmp / "copy.db"
    partial = short_tmp / ".copy.db.partial"
    async with DaemonClient(bare_daemon.config.daemon.socket_path) as other:
        backup = asyncio.create_task(other.call("backup", path=str(target)))
        await eventually(lambda: partial.exists() or target.exists())
        assert not target.exists(), "the backup's name shows a file before the copy is complete"
        assert (await bare_daemon.call("status"))["counts"]["queued"] == 300  # a read while it copies
        assert not backup.done()
        result = await backup
    assert result["bytes"] == target.stat().st_size and not partial.exists()
    with sqlite3.connect(target) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM notifications").fetchone() == (300,)


async def test_a_partial_file_left_by_a_killed_backup_does_not_block_the_next_one(
    bare_daemon: RunningDaemon, short_tmp: Path
) -> None:
    (short_tmp / ".copy.db.partial").write_bytes(b"half a database")
    (short_tmp / ".copy.db.partial-journal").write_bytes(b"and its journal")
    await bare_daemon.call("recipient.add", name="Ann")
    await bare_daemon.call("backup", path=str(short_tmp / "copy.db"))
    assert sorted(p.name for p in short_tmp.iterdir() if "copy" in p.name) == ["copy.db"]
    with sqlite3.connect(short_tmp / "copy.db") as db:
        assert db.execute("SELECT name FROM recipients").fetchall() == [("Ann",)]


async def test_a_backup_without_a_path_goes_to_the_backups_directory_in_the_state_directory(
    bare_daemon: RunningDaemon,
) -> None:
    first = await bare_daemon.call("backup")
    second = await bare_daemon.call("backup")  # within the same second: a name of its own
    backups = bare_daemon.config.daemon.state_dir / "backups"
    assert Path(first["path"]).parent == backups and Path(second["path"]).parent == backups
    assert first["path"] != second["path"]
    assert backups.stat().st_mode & 0o777 == 0o700 and Path(first["path"]).stat().st_mode & 0o777 == 0o600


def test_a_private_tmp_is_recognised_in_mountinfo() -> None:
    mountinfo = (
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
        "801 27 254:0 /tmp/systemd-private-3b1c-failover-notify.service-Qx1eH0/tmp /tmp rw - ext4 /dev/vda rw\n"
        "802 27 254:0 /var/tmp/systemd-private-3b1c-failover-notify.service-Zk2pA9/tmp /var/tmp rw - ext4 /dev/vda rw\n"
        "803 27 0:45 / /run/user/0 rw - tmpfs tmpfs rw\n"
    )
    assert private_tmp_dirs(mountinfo) == [Path("/tmp"), Path("/var/tmp")]
    assert private_tmp_dirs("27 1 254:0 / / rw - ext4 /dev/vda rw\n28 27 0:30 / /tmp rw - tmpfs tmpfs rw") == []


def _namespaces() -> bool:
    """User and mount namespaces (``unshare -Urm``): a real read-only mount and a real private /var/tmp
    without root or systemd."""
    unshare = shutil.which("unshare")
    return unshare is not None and subprocess.run([unshare, "-Urm", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _namespaces(), reason="needs unshare -Urm (user and mount namespaces)")
async def test_a_path_the_service_cannot_really_write_is_refused_naming_path(short_tmp: Path) -> None:
    read_only = short_tmp / "read-only"
    private = short_tmp / "systemd-private-3b1c-failover-notify.service-Zk2pA9" / "tmp"
    for directory in (read_only, private):
        directory.mkdir(parents=True)
    state = short_tmp / "state"
    config = write_config(short_tmp / "fnotify.toml", state, {})
    # what ProtectSystem=strict and PrivateTmp=yes do to the service, in a namespace of its own
    sandbox = (f"mount --bind {read_only} {read_only} && mount -o remount,bind,ro {read_only} && "
               f"mount --bind {private} /var/tmp && exec \"$0\" \"$@\"")
    daemon = DaemonProcess(config, state / "fnotify.sock", short_tmp / "daemon.log")
    daemon.command = ["unshare", "-Urm", "sh", "-c", sandbox, sys.executable, "-m", "daemon"]
    await daemon.start()
    try:
        async with DaemonClient(state / "fnotify.sock") as client:
            with pytest.raises(RemoteError) as err:
                await client.call("backup", path=str(read_only / "copy.db"))
            assert (err.value.code, err.value.field) == ("invalid", "path")
            assert f"the daemon cannot write in {read_only} (Read-only file system)" in str(err.value)
            assert f"without a path writes to {state / 'backups'}" in str(err.value)

            with pytest.raises(RemoteError) as err:
                await client.call("backup", path="/var/tmp/copy.db")
            assert (err.value.code, err.value.field) == ("invalid", "path")
            assert "/var/tmp is private to the service (systemd PrivateTmp=)" in str(err.value)
            assert not (private / "copy.db").exists()

            assert Path((await client.call("backup"))["path"]).parent == state / "backups"
    finally:
        await daemon.terminate()
