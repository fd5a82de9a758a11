"""The cluster's bookkeeping on SQLite: the same tables and rules as PostgreSQL's
(daemon/storage/postgres_cluster.py), so one store contract holds; with one daemon it is elected at once.
Each write function is a group-commit writer op (one ``BEGIN IMMEDIATE`` transaction)."""

from __future__ import annotations

import os
import socket
import sqlite3
from datetime import UTC, datetime

from daemon.core.store import UPDATE_RETENTION, Member


def heartbeat(conn: sqlite3.Connection, owner: str, started_at: datetime, now: datetime,
              stale_before: datetime) -> None:
    conn.execute(
        "INSERT INTO cluster_members (id, host, pid, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
        (owner, socket.gethostname(), os.getpid(), started_at.timestamp(), now.timestamp()))
    conn.execute("DELETE FROM cluster_members WHERE heartbeat_at < ?", (stale_before.timestamp(),))


def leave(conn: sqlite3.Connection, owner: str) -> None:
    conn.execute("DELETE FROM cluster_members WHERE id = ?", (owner,))
    conn.execute("DELETE FROM cluster_leaders WHERE owner = ?", (owner,))


def members(leaders: list[sqlite3.Row], rows: list[sqlite3.Row]) -> list[Member]:
    leads: dict[str, list[str]] = {}
    for role, owner in leaders:
        leads.setdefault(owner, []).append(role)
    return [Member(r["id"], r["host"], r["pid"], datetime.fromtimestamp(r["started_at"], UTC),
                   datetime.fromtimestamp(r["heartbeat_at"], UTC), tuple(leads.get(r["id"], ()))) for r in rows]


def lead(conn: sqlite3.Connection, role: str, owner: str, now: datetime, until: datetime) -> bool:
    row = conn.execute(
        "INSERT INTO cluster_leaders AS l (role, owner, lease_until) VALUES (?1, ?2, ?4)"
        " ON CONFLICT (role) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until"
        " WHERE l.owner = excluded.owner OR l.lease_until <= ?3 RETURNING owner",
        (role, owner, now.timestamp(), until.timestamp())).fetchone()
    return row is not None and row[0] == owner


def first_time_update(conn: sqlite3.Connection, update_id: int, now: datetime) -> bool:
    new = conn.execute("INSERT INTO telegram_updates (update_id, handled_at) VALUES (?, ?) ON CONFLICT DO NOTHING"
                       " RETURNING 1", (update_id, now.timestamp())).fetchone()
    if new and update_id % 100 == 0:
        conn.execute("DELETE FROM telegram_updates WHERE handled_at < ?", (now.timestamp() - UPDATE_RETENTION,))
    return new is not None
