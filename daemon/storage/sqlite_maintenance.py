"""Housekeeping on the SQLite store: an online backup and the retention prune.

``backup`` copies through the SQLite backup API on the read connection, so it is consistent (one
snapshot) while the daemon keeps writing; it never replaces an existing file. ``prune`` deletes final
notifications (their attempts go by ON DELETE CASCADE) in slices, so one prune never holds the single
writer for long.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import datetime
from pathlib import Path

import aiosqlite

from daemon.core.errors import Conflict, StorageError, ValidationError
from daemon.core.models import FINAL_STATUSES

PRUNE_SLICE = 2000
_FINAL = ",".join(f"'{s}'" for s in sorted(FINAL_STATUSES))


def check_backup_target(path: Path) -> None:
    """Refuse a relative path, a missing directory and an existing file (nothing is overwritten)."""
    if not path.is_absolute():
        raise ValidationError("path", "must be an absolute path (the daemon's working directory is not yours)")
    if not path.parent.is_dir():
        raise ValidationError("path", f"{path.parent} is not a directory")
    if path.exists():
        raise Conflict(f"{path} exists; a backup never overwrites a file")


async def backup(read: aiosqlite.Connection, path: Path) -> int:
    """Copy the database to the new file ``path``; return its size in bytes."""
    check_backup_target(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # notifications are private
    except FileExistsError:
        raise Conflict(f"{path} exists; a backup never overwrites a file") from None
    except OSError as exc:
        raise StorageError(f"cannot create {path}: {exc.strerror}") from None
    os.close(fd)
    target = sqlite3.connect(path, check_same_thread=False)  # used on aiosqlite's thread
    try:
        await read.backup(target)
    except sqlite3.Error as exc:
        target.close()
        path.unlink(missing_ok=True)
        raise StorageError(f"backup to {path} failed: {exc}") from None
    target.close()
    return path.stat().st_size


def prune_slice(conn: sqlite3.Connection, before: datetime) -> int:
    """Delete up to PRUNE_SLICE final notifications last updated before ``before``; return how many."""
    cur = conn.execute(
        f"DELETE FROM notifications WHERE id IN (SELECT id FROM notifications WHERE status IN ({_FINAL})"
        f" AND updated_at < ? AND in_flight = 0 LIMIT {PRUNE_SLICE})",
        (before.timestamp(),),
    )
    return cur.rowcount
