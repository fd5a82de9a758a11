"""The SQLite store's schema: refuse a file that is not ours, then bring ours up to date in place.

The version is ``PRAGMA user_version``; ``migrations/sqlite/NNNN_*.sql`` takes it from NNNN - 1 to NNNN.
Each migration runs under ``BEGIN IMMEDIATE`` and re-reads the version first, so two processes opening
one file at once apply it once. A file written by a newer daemon is refused rather than written into.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from daemon.core.errors import StorageError
from daemon.storage.schema import migrations

__all__ = ["ADDED_COLUMNS", "APPLICATION_ID", "prepare", "statements"]

APPLICATION_ID = 0x666E6F74  # "fnot": tells our database from a foreign SQLite file
# columns added to version 1 after it first shipped: a version-1 file from before them lacks them
ADDED_COLUMNS = (("notifications", "awaiting_ack", "INTEGER NOT NULL DEFAULT 0"),)


def prepare(raw: sqlite3.Connection, path: Path) -> None:
    """Check the file is ours, switch it to WAL, and apply every migration it lacks."""
    check_identity(raw, path)
    raw.execute("PRAGMA journal_mode = WAL")
    for migration in migrations("sqlite"):
        raw.execute("BEGIN IMMEDIATE")
        try:
            version = raw.execute("PRAGMA user_version").fetchone()[0]
            if version < migration.version:
                if version == 1:
                    _add_missing_columns(raw)
                for statement in statements(migration.sql):
                    raw.execute(statement)
                raw.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                raw.execute(f"PRAGMA user_version = {migration.version}")
            raw.execute("COMMIT")
        except sqlite3.Error as exc:
            raw.execute("ROLLBACK")
            raise StorageError(f"{path}: cannot upgrade the schema to version {migration.version}: {exc}") from None


def check_identity(raw: sqlite3.Connection, path: Path) -> None:
    """Refuse a file that is not ours (or from a newer version) instead of writing into it."""
    app_id = raw.execute("PRAGMA application_id").fetchone()[0]
    version = raw.execute("PRAGMA user_version").fetchone()[0]
    tables = raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    if app_id == 0 and not tables:
        return  # a new, empty database
    if app_id != APPLICATION_ID:
        raise StorageError(f"{path}: not a failover-notify database (application_id {app_id:#x})")
    latest = len(migrations("sqlite"))
    if version > latest:
        raise StorageError(f"{path}: schema version {version} is newer than this daemon ({latest})")


def statements(script: str) -> list[str]:
    """Split a migration into statements (``executescript`` would commit our open transaction)."""
    found: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            found.append(pending.strip())
            pending = ""
    if pending.strip() and not all(ln.strip().startswith("--") or not ln.strip() for ln in pending.splitlines()):
        raise ValueError(f"incomplete SQL statement at the end of a migration: {pending.strip()[:60]!r}")
    return found


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    for table, column, declaration in ADDED_COLUMNS:
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})").fetchall()}
        if column not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
