"""``--only e2e``: end to end over the Telegram API (instant provider, then 50 ms of provider
latency), beside a bare httpx loop to the same simulator in the same run; and failover latency.

Targets: >= 1,500 delivered/s with instant providers; the daemon's httpx client against the bare loop.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from bench.common import Row, add_recipients, enqueue, pct, verdict, wait_delivered
from bench.procs import DaemonProc, Simulators
from bench.startup import bare_httpx_loop, start_with_bot
from daemon.client import DaemonClient

FAILOVER_RATE = 200.0  # notifications per second offered while measuring failover latency
RATE_TARGET = 1500.0


async def end_to_end(sims: Simulators, channels: str, work: Any, count: int, latency: float) -> dict[str, Any]:
    daemon = DaemonProc(work / f"e2e-{int(latency * 1000)}", channels)
    await start_with_bot(daemon, sims)  # steady state: the bot's import (after READY) is done
    try:
        recipients = await add_recipients(daemon)
        await sims.fault("telegram", {"kind": "latency", "delay": latency} if latency else None)
        began = time.perf_counter()
        count = (await enqueue(daemon, recipients, 8, count))["count"]
        await wait_delivered(daemon, count, 120)
        elapsed = time.perf_counter() - began
        return {"latency_ms": latency * 1000, "count": count, "delivered_per_s": count / elapsed,
                "peak_rss_mb": daemon.rss_mb()[1]}
    finally:
        await sims.fault("telegram", None)
        await daemon.stop()


async def failover_latency(sims: Simulators, channels: str, work: Any, count: int) -> dict[str, Any]:
    daemon = DaemonProc(work / "failover", channels)
    # steady state, as for end to end: aiogram's import (after READY, at the first quiet moment) holds the
    # GIL for seconds and, overlapping the load, would make this row measure that instead (see README)
    await start_with_bot(daemon, sims)
    try:
        recipients = await add_recipients(daemon)
        await sims.fault("telegram", {"kind": "permanent"})
        # latency at a steady offered load (200/s), not under saturation where it is queueing
        count = (await enqueue(daemon, recipients, 8, count, rate=FAILOVER_RATE))["count"]
        await wait_delivered(daemon, count, 120)
        gaps = []
        async with DaemonClient(daemon.socket) as client:
            for n in await client.call("list", limit=count):
                tg, email = n["attempts"][0], n["attempts"][1]
                gaps.append((datetime.fromisoformat(email["started_at"])
                             - datetime.fromisoformat(tg["finished_at"])).total_seconds() * 1000)
        return {"count": len(gaps), "p50_ms": pct(gaps, 0.5), "p99_ms": pct(gaps, 0.99), "max_ms": max(gaps)}
    finally:
        await sims.fault("telegram", None)
        await daemon.stop()


async def run(ctx: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["end_to_end"] = [await end_to_end(ctx.sims, ctx.channels, ctx.work, ctx.args.e2e, lat) for lat in (0.0, 0.05)]
    out["telegram_reference"] = await bare_httpx_loop(ctx.channels, ctx.args.reference)
    out["failover"] = await failover_latency(ctx.sims, ctx.channels, ctx.work, ctx.args.failover)
    return out


def rows(r: dict[str, Any]) -> list[Row]:
    if "end_to_end" not in r:
        return []
    ref = r["telegram_reference"]
    out = []
    for e in r["end_to_end"]:
        rate = e["delivered_per_s"]
        row = Row(f"end to end over the Telegram API, provider latency {e['latency_ms']:.0f} ms", f"{rate:,.0f}/s",
                  detail=f"{e['count']} delivered, peak RSS {e['peak_rss_mb']:.0f} MiB")
        if e["latency_ms"] == 0:
            row = Row(row.name, row.figure, f"bare httpx {ref['per_s']:,.0f}/s ({ref['connections']} conn.)",
                      f"{rate / ref['per_s']:.2f}x", f">= {RATE_TARGET:,.0f}/s: {verdict(rate >= RATE_TARGET)}",
                      row.detail)
        out.append(row)
    by = ", ".join(f"{c} conn. {v:,.0f}/s" for c, v in ref["by_connections"].items())
    out.append(Row("bare httpx loop to the Telegram simulator", f"{ref['per_s']:,.0f}/s", detail=by))
    f = r["failover"]
    out.append(Row(f"failover latency at {FAILOVER_RATE:.0f}/s (permanent -> next)", f"p50 {f['p50_ms']:.1f} ms",
                   detail=f"p99 {f['p99_ms']:.1f} ms, max {f['max_ms']:.1f} ms"))
    return out
