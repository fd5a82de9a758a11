"""The SQLite store's claims: which daemon holds a notification, and until when (its lease).

The rules are those of ``migrations/postgres/0001_initial.sql`` (the one contract both stores keep):

* a notification is due when it is unclaimed and ``next_attempt_at <= now``; claiming it records the
  owner (``claimed_by``, a daemon id) and ``lease_until``, which the engine renews while attempts run;
* a lease that ran out belongs to a daemon that stopped renewing it (killed, hung): every claim first
  releases such rows of *other* owners, recording their open attempts ``interrupted`` and making the
  row due at once, as a restart does (at-least-once). A daemon never takes its own expired lease: its
  task may still be running, and the claim it would race is its own;
* ``recover`` (at start and after a stop that timed out) releases the caller's own rows, expired
  leases, and the rows of owners known to be gone (``OwnerPresence``); never another live daemon's.

Each function but ``OwnerPresence`` is a write op for the group-commit writer (one ``BEGIN IMMEDIATE``
transaction, which also serialises claims between processes sharing the file).

SQLite can tell a dead owner at once where PostgreSQL must wait for the lease: every store holds a
shared ``flock`` on ``<database>.lock`` while open, and the kernel drops it when the process dies,
``kill -9`` included. A store that gets the lock exclusively at open is alone with the file, so every
claim it finds then is a dead daemon's: a restart retries them at once, as before leases.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
from collections.abc import Callable, Collection, Iterable
from pathlib import Path

from daemon.core.errors import StorageError
from daemon.core.models import FINAL_STATUSES, Outcome

log = logging.getLogger(__name__)

_FINAL = ",".join(f"'{s}'" for s in sorted(FINAL_STATUSES))
STOPPED = "the daemon stopped while this attempt was in flight"


def lease_expired(owner: str) -> str:
    """The error recorded on an attempt whose daemon's lease ran out."""
    return f"daemon {owner} stopped renewing its lease while this attempt was in flight"


class OwnerPresence:
    """A shared ``flock`` on ``<database>.lock`` for as long as the store is open."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock exclusively if nobody else holds it: True when this store is alone with the file.
        The caller reads the claims of dead daemons before ``share()``. Where ``flock`` does not work
        (some network file systems) nobody counts as gone: their leases run out instead."""
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot create the lock file: {exc.strerror}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as exc:
            log.warning("%s: flock failed (%s): a dead daemon's claims are retried when their lease runs out",
                        self.path, exc.strerror)
            return False
        return True

    def share(self) -> None:
        """From exclusive (or nothing) to shared, held until ``release()``: others may open the file
        from now on. Converting drops the lock for a moment; harmless here, as this store has claimed
        nothing yet."""
        if self._fd is not None:
            with contextlib.suppress(OSError):  # see acquire(): no flock, no shortcut
                fcntl.flock(self._fd, fcntl.LOCK_SH)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # drops the flock
            self._fd = None


def current_owners(conn: sqlite3.Connection) -> set[str]:
    """Every owner holding a claim now."""
    rows = conn.execute("SELECT DISTINCT claimed_by FROM notifications WHERE claimed_by IS NOT NULL").fetchall()
    return {row[0] for row in rows}


def release(
    conn: sqlite3.Connection, where: str, params: tuple[object, ...], ts: float, reason: Callable[[str], str]
) -> dict[str, int]:
    """Release the claimed notifications matching ``where``: close their open attempts as interrupted
    (``reason(owner)`` is the error recorded), make the unfinished ones due at ``ts``. Returns, per owner
    whose rows were taken, how many attempts were closed."""
    rows = conn.execute(f"SELECT id, claimed_by FROM notifications WHERE claimed_by IS NOT NULL AND ({where})",
                        params).fetchall()
    closed: dict[str, int] = {}
    for notification_id, owner in rows:
        cur = conn.execute(
            "UPDATE attempts SET outcome = ?, finished_at = ?, error = ? WHERE notification_id = ?"
            " AND finished_at IS NULL",
            (str(Outcome.INTERRUPTED), ts, reason(owner), notification_id),
        )
        closed[owner] = closed.get(owner, 0) + cur.rowcount
        conn.execute(
            f"UPDATE notifications SET claimed_by = NULL, lease_until = NULL, updated_at = ?,"
            f" next_attempt_at = CASE WHEN status IN ({_FINAL}) THEN next_attempt_at ELSE ? END WHERE id = ?",
            (ts, ts, notification_id),
        )
    return closed


def recover(conn: sqlite3.Connection, owner: str, ts: float, dead: Iterable[str] = ()) -> int:
    """At start (or after a stop that timed out): release ``owner``'s own rows, expired leases and the
    rows of the ``dead`` owners; returns the number of attempts recorded interrupted."""
    gone = {owner, *dead}
    ordered = sorted(gone)
    marks = ",".join("?" * len(ordered))
    closed = release(conn, f"claimed_by IN ({marks}) OR lease_until <= ?", (*ordered, ts), ts,
                     lambda who: STOPPED if who in gone else lease_expired(who))
    return sum(closed.values())


def claim(
    conn: sqlite3.Connection, owner: str, ts: float, lease_until: float, limit: int
) -> tuple[list[sqlite3.Row], dict[str, int]]:
    """Release other owners' leases that ran out by ``ts``, then claim up to ``limit`` due notifications
    for ``owner``. Returns the claimed rows and, per owner whose lease expired, the attempts closed."""
    taken = release(conn, "claimed_by <> ? AND lease_until <= ?", (owner, ts), ts, lease_expired)
    rows = conn.execute(
        "UPDATE notifications SET claimed_by = ?, lease_until = ?, updated_at = ? WHERE id IN ("
        " SELECT id FROM notifications WHERE next_attempt_at <= ? AND claimed_by IS NULL"
        " ORDER BY priority DESC, next_attempt_at LIMIT ?) RETURNING *",
        (owner, lease_until, ts, ts, limit),
    ).fetchall()
    return rows, taken


def renew(conn: sqlite3.Connection, owner: str, ids: Collection[int], until: float) -> set[int]:
    """Extend ``owner``'s leases on ``ids`` to ``until``; returns the ids it still holds."""
    held: set[int] = set()
    ordered = sorted(ids)
    for start in range(0, len(ordered), 500):  # SQLite caps the number of parameters
        chunk = ordered[start:start + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"UPDATE notifications SET lease_until = ? WHERE claimed_by = ? AND id IN ({marks}) RETURNING id",
            (until, owner, *chunk),
        ).fetchall()
        held.update(row[0] for row in rows)
    return held


def holds(conn: sqlite3.Connection, notification_id: int, owner: str) -> bool:
    row = conn.execute("SELECT claimed_by FROM notifications WHERE id = ?", (notification_id,)).fetchone()
    return row is not None and row[0] == owner
