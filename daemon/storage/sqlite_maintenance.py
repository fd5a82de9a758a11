"""Housekeeping on the SQLite store: its files, an online backup and the retention prune.

The database is created 0600 in a 0700 directory whatever the umask (SQLite gives its ``-wal`` and
``-shm`` files the database's mode).

``backup`` copies through the SQLite backup API from a connection of its own, on a thread of its own,
in steps of ``BACKUP_PAGES_PER_STEP`` pages with a pause between them: the daemon's reads and writes go
on meanwhile. One read transaction spans the copy, so it is one consistent snapshot however much is
written during it. The copy is written to ``.<name>.partial`` beside the target and renamed into place
only when complete: a backup killed half-way leaves no half-written file under the name asked for, and
the next backup to that name replaces the leftover. A backup never replaces an existing file.

``prune`` deletes final notifications (their attempts go by ON DELETE CASCADE) in slices, so one prune
never holds the single writer for long.
"""

from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path

from daemon.core.errors import Conflict, StorageError, ValidationError
from daemon.core.models import FINAL_STATUSES

PRUNE_SLICE = 2000
_FINAL = ",".join(f"'{s}'" for s in sorted(FINAL_STATUSES))
BACKUP_PAGES_PER_STEP = 256
"""Pages copied per step: 1 MiB at SQLite's default 4 KiB page size."""
BACKUP_STEP_PAUSE = 0.002
"""Seconds the backup's thread sleeps between steps, leaving the disk to the daemon's writer."""
_NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


def create_private(database: Path) -> None:
    """Create the database's directory (0700) and an empty database file (0600) if they are missing."""
    directory = database.parent
    if not directory.is_dir():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)  # mkdir's mode passes through the umask; this does not
    try:
        fd = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def partial_path(path: Path) -> Path:
    """Where a backup to ``path`` is written until it is complete."""
    return path.with_name(f".{path.name}.partial")


def check_backup_target(path: Path, backups: Path | None = None) -> None:
    """Refuse a relative path, a missing or unwritable directory and an existing file (nothing is
    overwritten). ``backups``: the directory to suggest instead of an unwritable one."""
    if not path.is_absolute():
        raise ValidationError("path", "must be an absolute path (the daemon's working directory is not yours)")
    if not path.parent.is_dir():
        raise ValidationError("path", f"{path.parent} is not a directory")
    if path.exists() or path.is_symlink():
        raise Conflict(f"{path} exists; a backup never overwrites a file")
    if not os.access(path.parent, os.W_OK):
        raise _not_writable(path, os.strerror(errno.EROFS if _read_only(path.parent) else errno.EACCES), backups)


def _read_only(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _not_writable(path: Path, reason: str, backups: Path | None) -> ValidationError:
    hint = f"; `fnotify backup` without a path writes to {backups}" if backups is not None else ""
    return ValidationError("path", f"the daemon cannot write in {path.parent} ({reason}); under systemd only its "
                                   f"state directory and any ReadWritePaths= are writable{hint}")


async def backup(database: Path, path: Path, backups: Path | None = None) -> int:
    """Copy ``database`` to the new file ``path``; return its size in bytes."""
    check_backup_target(path, backups)
    stop = threading.Event()
    try:
        return await asyncio.to_thread(_backup, database, path, backups, stop)
    except asyncio.CancelledError:
        stop.set()  # the thread gives up at its next step and removes the partial file
        raise


class _Stopped(Exception):
    pass


def _backup(database: Path, path: Path, backups: Path | None, stop: threading.Event) -> int:
    partial = partial_path(path)
    for leftover in (partial, partial.with_name(partial.name + "-journal")):
        leftover.unlink(missing_ok=True)  # from a backup killed half-way: nothing else writes these names
    try:
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    except OSError as exc:
        if exc.errno in _NOT_WRITABLE:
            raise _not_writable(path, exc.strerror or str(exc), backups) from None
        if exc.errno == errno.ENAMETOOLONG:
            raise ValidationError("path", "the file name is too long") from None
        raise StorageError(f"cannot create {partial}: {exc.strerror}") from None
    try:
        _copy(database, partial, stop)
        _publish(partial, path)
    except sqlite3.Error as exc:
        raise StorageError(f"backup to {path} failed: {exc}") from None
    except OSError as exc:
        raise StorageError(f"backup to {path} failed: {exc.strerror or exc}") from None
    except _Stopped:
        raise StorageError(f"backup to {path} abandoned: the daemon is stopping") from None
    finally:
        partial.unlink(missing_ok=True)
    return path.stat().st_size


def _copy(database: Path, partial: Path, stop: threading.Event) -> None:
    def pace(status: int, remaining: int, total: int) -> None:
        if stop.is_set():
            raise _Stopped
        time.sleep(BACKUP_STEP_PAUSE)

    source = sqlite3.connect(f"{database.absolute().as_uri()}?mode=ro", uri=True, isolation_level=None)
    try:
        # a read transaction held across every step: each copies from this one snapshot, and the copy
        # never restarts because the daemon wrote meanwhile
        source.execute("BEGIN")
        source.execute("SELECT count(*) FROM sqlite_master").fetchone()
        target = sqlite3.connect(partial, isolation_level=None)
        try:
            target.execute("PRAGMA journal_mode = OFF")  # a scratch file until renamed: nothing to roll back
            source.backup(target, pages=BACKUP_PAGES_PER_STEP, progress=pace)
        finally:
            target.close()
    finally:
        source.close()
    fd = os.open(partial, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(partial: Path, path: Path) -> None:
    """Give the complete copy its name: link() fails rather than replace a file made meanwhile."""
    try:
        os.link(partial, path)
    except FileExistsError:
        raise Conflict(f"{path} exists; a backup never overwrites a file") from None
    except OSError:  # a file system without hard links: check, then rename
        if path.exists():
            raise Conflict(f"{path} exists; a backup never overwrites a file") from None
        os.rename(partial, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the new name survives a power loss
    finally:
        os.close(fd)


def prune_slice(conn: sqlite3.Connection, before: datetime) -> int:
    """Delete up to PRUNE_SLICE final notifications last updated before ``before``; return how many."""
    cur = conn.execute(
        f"DELETE FROM notifications WHERE id IN (SELECT id FROM notifications WHERE status IN ({_FINAL})"
        f" AND updated_at < ? AND claimed_by IS NULL LIMIT {PRUNE_SLICE})",
        (before.timestamp(),),
    )
    return cur.rowcount
