"""Versioned schema migrations: ``migrations/<store>/NNNN_name.sql``, one file per schema version.

Each file takes the schema from version NNNN - 1 to NNNN and is applied once, in order, in one
transaction together with the record of its version (SQLite: ``PRAGMA user_version``; PostgreSQL: the
``schema_version`` table). A shipped file is never edited: a change is a new file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations(store: str) -> list[Migration]:
    """The migrations of ``store`` ("sqlite" or "postgres"), by version; versions run 1, 2, 3... without gaps."""
    folder = resources.files("daemon.storage").joinpath("migrations", store)
    found = []
    for entry in folder.iterdir():
        match = _NAME.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{store} migrations are not numbered 1..n: {[m.version for m in found]}")
    return found


def latest_version(store: str) -> int:
    return len(migrations(store))
