"""What every part of the benchmark shares: percentiles, recipients, the enqueue load, waiting for
delivery, and the row of the printed table (a figure beside its in-run reference and the ratio)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

from bench.procs import DaemonProc
from bench.sends import run_clients
from daemon.client import DaemonClient

CHATS = 100


@dataclass(frozen=True)
class Row:
    """One line of the table: ``figure`` beside ``reference`` (measured in the same run) and the ratio."""

    name: str
    figure: str
    reference: str = ""
    ratio: str = ""
    target: str = ""
    detail: str = ""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


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
                  rate: float | None = None, **params: Any) -> dict[str, Any]:
    """``total`` sends from ``clients`` connections, as fast as acknowledged, or at ``rate`` per second.

    Each client is one connection of its own, closed loop: it writes one ``send`` request, reads its
    reply, checks it (``ok`` true, the request's own ``id``, a notification id in the result) and only
    then writes the next. Latency is per request, from the write to the reply read. The client is
    lean on purpose (``bench.sends``): it shares the machine's two cores with the daemon.
    """
    per_client = -(-total // clients)  # round up: every client sends the same number
    lines = [[json.dumps({"id": i, "op": "send", "params": {
        "recipient_id": recipients[(k + i) % len(recipients)], "message": f"bench {k}-{i}", **params}},
        separators=(",", ":")).encode() + b"\n" for i in range(per_client)] for k in range(clients)]
    latencies, elapsed = await run_clients(str(daemon.socket), lines, rate)
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
            await asyncio.sleep(0.02)
    raise TimeoutError(f"{target} notifications not final within {limit_s} s: {counts}")
