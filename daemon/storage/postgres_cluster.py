"""The cluster's bookkeeping on PostgreSQL: members' heartbeats, leadership leases, handled Telegram
updates (tables in migrations/postgres/0003_cluster.sql). Each function runs one statement or a short
transaction of its caller's."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from daemon.core.store import UPDATE_RETENTION, Member
from daemon.storage.postgres_writes import Conn

LEAD = (
    "INSERT INTO cluster_leaders AS l (role, owner, lease_until) VALUES ($1, $2, $4)"
    " ON CONFLICT (role) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until"
    " WHERE l.owner = excluded.owner OR l.lease_until <= $3"
    " RETURNING owner"
)
"""Take or renew: the ON CONFLICT ... WHERE writes only the caller's own row or an expired one; the row
lock the upsert takes makes two daemons racing for an expired lease come out with one leader."""


async def heartbeat(conn: Conn, owner: str, started_at: datetime, now: datetime, stale_before: datetime) -> None:
    await conn.execute(
        "INSERT INTO cluster_members (id, host, pid, started_at, heartbeat_at) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
        owner, socket.gethostname(), os.getpid(), started_at, now)
    await conn.execute("DELETE FROM cluster_members WHERE heartbeat_at < $1", stale_before)


async def leave(conn: Conn, owner: str) -> None:
    await conn.execute("DELETE FROM cluster_members WHERE id = $1", owner)
    await conn.execute("DELETE FROM cluster_leaders WHERE owner = $1", owner)


async def members(conn: Conn, now: datetime) -> list[Member]:
    leads: dict[str, list[str]] = {}
    for row in await conn.fetch("SELECT role, owner FROM cluster_leaders WHERE lease_until > $1", now):
        leads.setdefault(row["owner"], []).append(row["role"])
    rows = await conn.fetch("SELECT * FROM cluster_members ORDER BY started_at, id")
    return [Member(r["id"], r["host"], r["pid"], r["started_at"], r["heartbeat_at"], tuple(leads.get(r["id"], ())))
            for r in rows]


async def lead(conn: Conn, role: str, owner: str, now: datetime, until: datetime) -> bool:
    return bool(await conn.fetchval(LEAD, role, owner, now, until) == owner)


async def first_time_update(conn: Conn, update_id: int, now: datetime) -> bool:
    new = await conn.fetchval(
        "INSERT INTO telegram_updates (update_id, handled_at) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1",
        update_id, now)
    if new and update_id % 100 == 0:  # now and then, not on every update
        await conn.execute("DELETE FROM telegram_updates WHERE handled_at < $1",
                           now - timedelta(seconds=UPDATE_RETENTION))
    return bool(new)
