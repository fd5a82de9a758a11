"""``python -m bench`` (``make bench``): measure the daemon against loopback simulators.

Prints a table and writes ``bench/results/<timestamp>.json``. Every loop is bounded; nothing
leaves 127.0.0.1. Figures, not pass/fail: the targets are in the README.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import cluster
from bench.procs import DaemonProc, Simulators
from bench.startup import bare_httpx_loop, idle_memory, ready_with_backlog, start_with_bot
from daemon.client import DaemonClient

RESULTS = Path(__file__).resolve().parent / "results"
CHATS = 100
FAILOVER_RATE = 200.0  # notifications per second offered while measuring failover latency


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def add_recipients(daemon: DaemonProc, telegram: bool = True) -> list[int]:
    async with DaemonClient(daemon.socket) as client:
        ids = []
        for i in range(CHATS):
            fields: dict[str, Any] = {"name": f"bench{i}", "email": f"bench{i}@example.com",
                                      "phone": f"+1415555{i:04d}"}
            if telegram:
                fields["telegram_chat_id"] = 10_000 + i
            ids.append((await client.call("recipient.add", **fields))["id"])
        return ids


async def enqueue(daemon: DaemonProc, recipients: list[int], clients: int, total: int,
                  rate: float | None = None, **params: Any) -> dict[str, float]:
    """``total`` sends from ``clients`` connections, as fast as acknowledged, or at ``rate`` per second."""
    latencies: list[float] = []
    per_client = -(-total // clients)  # round up: every client sends the same number

    async def one_client(k: int) -> None:
        async with DaemonClient(daemon.socket) as client:
            for i in range(per_client):
                if rate is not None:  # offered load: each client sends on its own schedule
                    await asyncio.sleep(max(0.0, start + i * clients / rate - time.perf_counter()))
                began = time.perf_counter()
                await client.call("send", recipient_id=recipients[(k + i) % len(recipients)],
                                  message=f"bench {k}-{i}", **params)
                latencies.append(time.perf_counter() - began)

    start = began = time.perf_counter()
    await asyncio.gather(*(one_client(k) for k in range(clients)))
    elapsed = time.perf_counter() - began
    return {"clients": clients, "count": per_client * clients, "per_s": per_client * clients / elapsed,
            "p50_ms": pct(latencies, 0.5) * 1000, "p99_ms": pct(latencies, 0.99) * 1000}


async def wait_delivered(daemon: DaemonProc, target: int, limit_s: float) -> float:
    """Seconds until ``target`` notifications are final (bounded by ``limit_s``)."""
    began = time.perf_counter()
    counts: dict[str, int] = {}
    async with DaemonClient(daemon.socket) as client:
        while time.perf_counter() - began < limit_s:
            counts = (await client.call("status"))["counts"]
            if counts.get("delivered", 0) + counts.get("failed", 0) >= target:
                return time.perf_counter() - began
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{target} notifications not final within {limit_s} s: {counts}")


async def end_to_end(sims: Simulators, channels: str, work: Path, count: int, latency: float) -> dict[str, Any]:
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


async def failover_latency(sims: Simulators, channels: str, work: Path, count: int) -> dict[str, Any]:
    daemon = DaemonProc(work / "failover", channels)
    await daemon.start()
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


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="fnb-", dir="/tmp"))
    sims = Simulators()
    channels = await sims.start()
    results: dict[str, Any] = {"when": datetime.now().isoformat(timespec="seconds")}
    try:
        daemon = DaemonProc(work / "enqueue", channels)
        await daemon.start()
        recipients = await add_recipients(daemon)
        async with DaemonClient(daemon.socket) as client:
            await client.call("pause")  # measure the acknowledged write path alone
        results["enqueue"] = [await enqueue(daemon, recipients, c, args.enqueue) for c in (1, 8, 64)]
        await daemon.stop()
        print_partial("enqueue", results["enqueue"])
        results["end_to_end"] = [await end_to_end(sims, channels, work, args.e2e, lat) for lat in (0.0, 0.05)]
        results["telegram_reference"] = await bare_httpx_loop(channels, args.reference)
        print_partial("end to end", results["end_to_end"])
        print_partial("bare httpx loop to the Telegram simulator", results["telegram_reference"])
        results["failover"] = await failover_latency(sims, channels, work, args.failover)
        print_partial("failover", results["failover"])
        results["backlog"] = await ready_with_backlog(sims, channels, work, args.backlog, args.ready_runs,
                                                      args.drain_window, enqueue, add_recipients)
        print_partial("backlog", results["backlog"])
        results["idle"] = await idle_memory(sims, channels, work, 10.0)
        print_partial("idle", results["idle"])
        results["cluster"] = await cluster.rows(HOOKS, sims, channels, work, args)
    finally:
        await sims.stop()
        shutil.rmtree(work, ignore_errors=True)
    return results


def print_partial(name: str, value: Any) -> None:
    print(f"  {name}: {json.dumps(value, default=lambda f: round(f, 2))}", flush=True)


def table(r: dict[str, Any]) -> str:
    rows = [(f"enqueue, {e['clients']} client(s)", f"{e['per_s']:,.0f}/s",
             f"p50 {e['p50_ms']:.2f} ms, p99 {e['p99_ms']:.2f} ms") for e in r["enqueue"]]
    ref = r["telegram_reference"]
    for e in r["end_to_end"]:
        detail = f"{e['count']} delivered, peak RSS {e['peak_rss_mb']:.0f} MiB"
        if e["latency_ms"] == 0:
            detail += (f"; bare httpx loop {ref['per_s']:,.0f}/s ({ref['connections']} connections),"
                       f" ratio {e['delivered_per_s'] / ref['per_s']:.2f}")
        rows.append((f"end to end over the Telegram API, provider latency {e['latency_ms']:.0f} ms",
                     f"{e['delivered_per_s']:,.0f}/s", detail))
    f = r["failover"]
    rows.append((f"failover latency at {FAILOVER_RATE:.0f}/s (permanent -> next)", f"p50 {f['p50_ms']:.1f} ms",
                 f"p99 {f['p99_ms']:.1f} ms, max {f['max_ms']:.1f} ms"))
    b, i = r["backlog"], r["idle"]
    runs = ", ".join(f"{s:.2f}" for s in b["ready_runs_s"])
    rows.append((f"ready with {b['count'] // 1000}k backlog (spawn -> status answered, Telegram on)",
                 f"{b['ready_s']:.2f} s", f"median of {runs} s; bot answering {i['with_bot']['bot_s']:.2f} s"
                 f" after spawn (empty database)"))
    rows.append(("backlog: drain rate", f"{b['drain_per_s']:,.0f}/s", f"{b['drained']:,} in the window"))
    bot = i["with_bot"]
    idle_bot, idle_bare = bot["rss_mb"], i["without_bot"]["rss_mb"]
    rows.append(("idle RSS with the bot / without Telegram", f"{idle_bot:.0f} MiB",
                 f"{idle_bare:.0f} MiB without; {bot['cpu_s']:.2f} s CPU in {bot['seconds']:.0f} s"))
    rows.append(("drain peak RSS minus idle RSS (with the bot)", f"{b['peak_rss_mb_draining'] - idle_bot:.1f} MiB",
                 f"peak {b['peak_rss_mb_draining']:.0f} MiB draining, {b['peak_rss_mb_queueing']:.0f} MiB queueing"))
    rows += cluster.table_rows(r["cluster"])
    width = max(len(a) for a, _, _ in rows)
    return "\n".join(f"| {a:<{width}} | {b:>12} | {c} |" for a, b, c in rows)


HOOKS = cluster.Hooks(enqueue, add_recipients, wait_delivered, pct)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--enqueue", type=int, default=6400, help="sends per enqueue run")
    parser.add_argument("--e2e", type=int, default=5000, help="notifications per end-to-end run")
    parser.add_argument("--failover", type=int, default=1000, help="notifications for failover latency")
    parser.add_argument("--backlog", type=int, default=100_000, help="backlog size")
    parser.add_argument("--drain-window", type=float, default=30.0, help="seconds to measure the drain")
    parser.add_argument("--ready-runs", type=int, default=3, help="starts timed on the backlog (the median)")
    parser.add_argument("--reference", type=int, default=3000, help="requests per bare httpx loop")
    cluster.add_arguments(parser)
    args = parser.parse_args()
    results = asyncio.run(cluster.run_alone(HOOKS, args) if args.only == "cluster" else run(args))
    print()
    print(cluster.table(results) if args.only == "cluster" else table(results))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{datetime.now():%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
