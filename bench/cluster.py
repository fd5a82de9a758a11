"""PostgreSQL rows for ``python -m bench`` (``--only cluster`` runs them alone): two daemons on one
PostgreSQL beside one daemon on SQLite, measured in the same run on the same simulators.

- enqueue, 64 clients spread over the two daemons (32 each), delivery paused: the acknowledged write
  path, as the SQLite row measures it with 64 clients on its one daemon;
- end to end over the Telegram API (no provider latency), 8 clients spread over both daemons, both
  delivering (one of them also polls the bot): notifications final per second. Target: at least 80 %
  of the one daemon on SQLite;
- failover latency at 200/s offered over both daemons, Telegram failing permanently: from the Telegram
  attempt's end to the email attempt's start. Target: p99 < 20 ms.

The PostgreSQL is a throwaway cluster started as the tests start theirs (tests/pg.py: ``initdb`` and
``pg_ctl`` in a temporary directory, fsync off), or the server of ``$FNOTIFY_TEST_PG_URL``; without
either the rows say so. Every loop is bounded.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import Row, add_recipients, enqueue, pct, verdict, wait_delivered
from bench.procs import DaemonProc, Simulators
from bench.startup import start_with_bot
from daemon.client import DaemonClient
from tests.pg import ENV_URL, ThrowawayCluster, create_database, find_bindir

TARGET_E2E_RATIO = 0.8
TARGET_FAILOVER_P99_MS = 20.0
FAILOVER_RATE = 200.0
STANDBY_SETTLE_S = 3.0  # the standby imports aiogram after READY: let that finish before measuring


class Postgres:
    """A server for the run: ``$FNOTIFY_TEST_PG_URL`` or a throwaway cluster; ``missing`` says why not."""

    def __init__(self) -> None:
        self.cluster: ThrowawayCluster | None = None
        self.admin_url: str | None = os.environ.get(ENV_URL)
        self.missing: str | None = None

    def start(self) -> None:
        if self.admin_url:
            return
        bindir = find_bindir()
        if bindir is None:
            self.missing = f"no PostgreSQL: initdb/pg_ctl not found and {ENV_URL} not set"
            return
        if os.geteuid() == 0 and shutil.which("runuser") is None:
            self.missing = "no PostgreSQL: running as root without runuser to start it as postgres"
            return
        self.cluster = ThrowawayCluster(bindir)
        try:
            self.cluster.start()
        except RuntimeError as exc:
            self.missing = f"no PostgreSQL: the throwaway server did not start: {str(exc)[:200]}"
            self.cluster.stop()
            self.cluster = None
            return
        self.admin_url = self.cluster.admin_url

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()


def storage(url: str) -> str:
    return f'[storage]\nurl = "{url}"\n'


async def pair(pg: Postgres, work: Path, name: str, channels: str) -> list[DaemonProc]:
    assert pg.admin_url is not None
    url = await create_database(pg.admin_url)
    return [DaemonProc(work / f"{name}-{n}", channels, extra=storage(url)) for n in ("a", "b")]


async def spread(daemons: list[DaemonProc], recipients: list[int], clients: int, total: int,
                 rate: float | None = None) -> dict[str, float]:
    """``enqueue`` on every daemon at once, clients and sends split evenly; the rate over the wall time."""
    share = len(daemons)
    began = time.perf_counter()
    parts = await asyncio.gather(*(
        enqueue(d, recipients, clients // share, total // share,
                      rate=None if rate is None else rate / share) for d in daemons))
    elapsed = time.perf_counter() - began
    count = sum(p["count"] for p in parts)
    return {"clients": clients, "count": count, "per_s": count / elapsed,
            "p50_ms": max(p["p50_ms"] for p in parts), "p99_ms": max(p["p99_ms"] for p in parts)}


async def stop_all(daemons: list[DaemonProc]) -> None:
    await asyncio.gather(*(d.stop() for d in daemons), return_exceptions=True)


async def enqueue_rows(daemons: list[DaemonProc], total: int) -> dict[str, float]:
    for d in daemons:
        await d.start()
    try:
        recipients = await add_recipients(daemons[0])
        async with DaemonClient(daemons[0].socket) as client:
            await client.call("pause")  # on PostgreSQL a pause holds every daemon of the cluster
        return await spread(daemons, recipients, 64, total)
    finally:
        await stop_all(daemons)


async def end_to_end(sims: Simulators, daemons: list[DaemonProc], count: int) -> dict[str, Any]:
    await start_with_bot(daemons[0], sims)
    for d in daemons[1:]:
        await d.start("status")
    await asyncio.sleep(STANDBY_SETTLE_S if len(daemons) > 1 else 0.0)
    try:
        recipients = await add_recipients(daemons[0])
        began = time.perf_counter()
        count = int((await spread(daemons, recipients, 8, count))["count"])
        await wait_delivered(daemons[0], count, 120)
        elapsed = time.perf_counter() - began
        return {"count": count, "delivered_per_s": count / elapsed}
    finally:
        await stop_all(daemons)


async def failover(sims: Simulators, daemons: list[DaemonProc], count: int) -> dict[str, Any]:
    for d in daemons:
        await d.start()
    try:
        recipients = await add_recipients(daemons[0])
        await sims.fault("telegram", {"kind": "permanent"})
        count = int((await spread(daemons, recipients, 8, count, rate=FAILOVER_RATE))["count"])
        await wait_delivered(daemons[0], count, 120)
        gaps = []
        async with DaemonClient(daemons[0].socket) as client:
            for n in await client.call("list", limit=count):
                tg, email = n["attempts"][0], n["attempts"][1]
                gaps.append((datetime.fromisoformat(email["started_at"])
                             - datetime.fromisoformat(tg["finished_at"])).total_seconds() * 1000)
        return {"count": len(gaps), "p50_ms": pct(gaps, 0.5), "p99_ms": pct(gaps, 0.99),
                "max_ms": max(gaps)}
    finally:
        await sims.fault("telegram", None)
        await stop_all(daemons)


async def measure(sims: Simulators, channels: str, work: Path, args: Any) -> dict[str, Any]:
    """The PostgreSQL rows and their one-daemon-on-SQLite references, measured now, one after another."""
    pg = Postgres()
    await asyncio.to_thread(pg.start)
    result: dict[str, Any] = {"missing": pg.missing}
    try:
        if pg.missing:
            return result
        sqlite = [DaemonProc(work / "c-enqueue-sqlite", channels)]
        result["enqueue"] = {"sqlite": await enqueue_rows(sqlite, args.enqueue),
                             "postgres": await enqueue_rows(await pair(pg, work, "c-enqueue", channels),
                                                            args.enqueue)}
        print(f"  cluster enqueue: {result['enqueue']}", flush=True)
        sqlite = [DaemonProc(work / "c-e2e-sqlite", channels)]
        result["end_to_end"] = {"sqlite": await end_to_end(sims, sqlite, args.e2e),
                                "postgres": await end_to_end(sims, await pair(pg, work, "c-e2e", channels),
                                                             args.e2e)}
        print(f"  cluster end to end: {result['end_to_end']}", flush=True)
        sqlite = [DaemonProc(work / "c-failover-sqlite", channels)]
        result["failover"] = {"sqlite": await failover(sims, sqlite, args.failover),
                              "postgres": await failover(sims, await pair(pg, work, "c-failover", channels),
                                                         args.failover)}
        print(f"  cluster failover: {result['failover']}", flush=True)
    finally:
        await asyncio.to_thread(pg.stop)
    return result


async def run(ctx: Any) -> dict[str, Any]:
    return {"cluster": await measure(ctx.sims, ctx.channels, ctx.work, ctx.args)}


def rows(r: dict[str, Any]) -> list[Row]:
    """The PostgreSQL figures beside the one-daemon-on-SQLite references and the ratios."""
    c = r.get("cluster")
    if c is None:
        return []
    if c.get("missing"):
        return [Row("two daemons on PostgreSQL", "-", detail=str(c["missing"]))]
    e, d, f = c["enqueue"], c["end_to_end"], c["failover"]
    e_ratio = e["postgres"]["per_s"] / e["sqlite"]["per_s"]
    d_ratio = d["postgres"]["delivered_per_s"] / d["sqlite"]["delivered_per_s"]
    return [
        Row("enqueue, 64 clients over two daemons, PostgreSQL", f"{e['postgres']['per_s']:,.0f}/s",
            f"one daemon on SQLite {e['sqlite']['per_s']:,.0f}/s", f"{e_ratio:.2f}x", "",
            f"p99 {e['postgres']['p99_ms']:.2f} ms (SQLite p99 {e['sqlite']['p99_ms']:.2f} ms)"),
        Row("end to end, two daemons on PostgreSQL", f"{d['postgres']['delivered_per_s']:,.0f}/s",
            f"one daemon on SQLite {d['sqlite']['delivered_per_s']:,.0f}/s", f"{d_ratio:.2f}x",
            f">= {TARGET_E2E_RATIO:.2f}x: {verdict(d_ratio >= TARGET_E2E_RATIO)}"),
        Row(f"failover latency at {FAILOVER_RATE:.0f}/s, two daemons on PostgreSQL",
            f"p99 {f['postgres']['p99_ms']:.1f} ms",
            f"one daemon on SQLite p99 {f['sqlite']['p99_ms']:.1f} ms",
            f"{f['postgres']['p99_ms'] / max(f['sqlite']['p99_ms'], 0.001):.2f}x",
            f"< {TARGET_FAILOVER_P99_MS:.0f} ms: {verdict(f['postgres']['p99_ms'] < TARGET_FAILOVER_P99_MS)}",
            f"p50 {f['postgres']['p50_ms']:.1f} ms (SQLite {f['sqlite']['p50_ms']:.1f} ms)"),
    ]
