"""``--only enqueue``: acknowledged sends over the Unix socket (delivery paused), 1, 8 and 64 clients,
beside the reference: raw SQLite on the same disk in the same run (WAL, ``synchronous = FULL``, the
daemon's own schema and INSERT, one row per transaction, no socket, no JSON, no validation).

Each client is its own connection, closed loop: it writes one ``send`` request line, reads the reply,
checks it (``ok``, its own ``id``, a notification id in the result) and only then writes the next; the
latency of each request is taken from its write to its reply. The lines are encoded before the clock
starts and replies are read with a plain ``readline`` (``bench.common.enqueue``): the client runs on
the same cores as the daemon, so its own CPU per request is part of what limits the figure.

Target (64 clients): p99 < 10 ms and at least 3x the raw SQLite rate.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import Row, add_recipients, enqueue, verdict
from bench.procs import DaemonProc
from bench.startup import start_with_bot
from daemon.client import DaemonClient
from daemon.core.models import Channel, NewNotification
from daemon.storage import sqlite_schema
from daemon.storage.sqlite_notifications import insert_notification

CLIENTS = (1, 8, 64)
P99_TARGET_MS = 10.0
RATIO_TARGET = 3.0


def raw_sqlite(path: Path, count: int) -> dict[str, float]:
    """Rows per second: ``count`` of the daemon's notification INSERTs, one per committed transaction."""
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        sqlite_schema.prepare(raw, path)
        raw.execute("PRAGMA synchronous = FULL")
        raw.execute("INSERT INTO recipients (name, created_at) VALUES ('bench', 0)")
        recipient = raw.execute("SELECT id FROM recipients").fetchone()[0]
        now = datetime.now(UTC).timestamp()
        began = time.perf_counter()
        for i in range(count):
            raw.execute("BEGIN IMMEDIATE")
            insert_notification(raw, NewNotification(recipient, f"bench {i}", (Channel.TELEGRAM,)), now)
            raw.execute("COMMIT")
        elapsed = time.perf_counter() - began
    finally:
        raw.close()
    return {"count": count, "per_s": count / elapsed, "mean_ms": elapsed / count * 1000}


async def run(ctx: Any) -> dict[str, Any]:
    daemon = DaemonProc(ctx.work / "enqueue", ctx.channels)
    # steady state: the bot's aiogram import (after READY, on a thread) holds the GIL for seconds
    await start_with_bot(daemon, ctx.sims)
    try:
        recipients = await add_recipients(daemon)
        async with DaemonClient(daemon.socket) as client:
            await client.call("pause")  # measure the acknowledged write path alone
        runs = [await enqueue(daemon, recipients, c, ctx.args.enqueue) for c in CLIENTS]
    finally:
        await daemon.stop()
    reference = raw_sqlite(ctx.work / "raw-sqlite.db", ctx.args.raw_sqlite)
    return {"enqueue": runs, "raw_sqlite": reference}


def rows(r: dict[str, Any]) -> list[Row]:
    if "enqueue" not in r:
        return []
    ref = r["raw_sqlite"]["per_s"]
    out = [Row("raw SQLite, one row per transaction (WAL, synchronous=FULL)", f"{ref:,.0f}/s",
               detail=f"{r['raw_sqlite']['mean_ms']:.2f} ms per commit, same disk")]
    for e in r["enqueue"]:
        row = Row(f"enqueue, {e['clients']} client(s)", f"{e['per_s']:,.0f}/s", f"raw SQLite {ref:,.0f}/s",
                  f"{e['per_s'] / ref:.2f}x", detail=f"p50 {e['p50_ms']:.2f} ms, p99 {e['p99_ms']:.2f} ms")
        if e["clients"] == CLIENTS[-1]:
            met = e["p99_ms"] < P99_TARGET_MS and e["per_s"] >= RATIO_TARGET * ref
            row = Row(row.name, row.figure, row.reference, row.ratio,
                      f">= {RATIO_TARGET:g}x, p99 < {P99_TARGET_MS:g} ms: {verdict(met)}", row.detail)
        out.append(row)
    return out
