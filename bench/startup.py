"""Start-up, memory and the Telegram reference, for ``python -m bench``.

- ready with a 100k backlog: the backlog is queued through the socket (paused: nothing sent), the
  daemon killed, and its database copied; each run starts a daemon on a fresh copy and times from
  just before the process is spawned to the socket answering ``status`` (Telegram enabled);
- the bot: seconds until it answers a user's /help, from the same start (it comes up after READY);
- memory (MiB): idle RSS with the bot (Telegram on, after the bot answered) and without (Telegram
  off); the backlog's drain peak (VmHWM, reset before the drain) minus the same daemon's idle RSS with its bot up;
- the reference for end to end over Telegram: a bare httpx loop posting sendMessage to the same
  simulator, in this process, with 8 and with 100 connections (its better figure is the reference).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import Row, add_recipients, enqueue
from bench.procs import DaemonProc, Simulators
from daemon.client import DaemonClient

BOT_CHAT = 99  # no bench recipient has it
TELEGRAM_CONNECTIONS = (8, 100)


def without_telegram(channels: str) -> str:
    """The simulators' config with the [telegram] section left out."""
    sections = channels.split("\n\n")
    return "\n\n".join(s for s in sections if not s.lstrip().startswith("[telegram]"))


def telegram_api(channels: str) -> str:
    """``{api_base}/bot{token}`` from the simulators' config."""
    section = channels.split("[telegram]", 1)[1].split("\n\n", 1)[0]
    values = dict(line.split(" = ", 1) for line in section.splitlines() if " = " in line)
    return f"{values['api_base'].strip(chr(34))}/bot{values['token'].strip(chr(34))}"


async def wait_bot(sims: Simulators, began: float, limit_s: float = 60.0) -> float:
    """Seconds from ``began`` until the daemon's bot answers /help (the simulated user types it)."""
    async with httpx.AsyncClient(base_url=f"{sims.control}/telegram") as http:
        def answers(recent: list[dict[str, Any]]) -> set[int]:
            return {m["message_id"] for m in recent if m["chat_id"] == BOT_CHAT}

        # an answer given to an earlier daemon of the run is not this one's
        earlier = answers((await http.get("/messages", params={"last": "50"})).json())
        (await http.post("/user_sends", json={"chat_id": BOT_CHAT, "text": "/help"})).raise_for_status()
        while time.perf_counter() - began < limit_s:
            if answers((await http.get("/messages", params={"last": "5"})).json()) - earlier:
                return time.perf_counter() - began
            await asyncio.sleep(0.02)
    raise TimeoutError(f"the bot did not answer within {limit_s} s")


async def start_with_bot(daemon: DaemonProc, sims: Simulators) -> dict[str, float]:
    """Start ``daemon`` and wait for its bot: both times from the spawn."""
    began = time.perf_counter()
    ready = await daemon.start("status")
    return {"ready_s": ready, "bot_s": await wait_bot(sims, began)}


async def bare_httpx_loop(channels: str, count: int) -> dict[str, Any]:
    """sendMessage ``count`` times with a bare httpx client, at each connection count; the best rate."""
    url = f"{telegram_api(channels)}/sendMessage"
    rates = {}
    for connections in TELEGRAM_CONNECTIONS:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(limits=limits, timeout=30) as http:
            pending = iter(range(count))

            async def worker(http: httpx.AsyncClient = http, pending: Any = pending) -> None:
                for i in pending:
                    answer = await http.post(url, json={"chat_id": 10_000 + i % 100, "text": f"ref {i}"})
                    answer.json()

            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(connections)))
            rates[connections] = count / (time.perf_counter() - began)
    best = max(rates, key=lambda c: rates[c])
    return {"count": count, "per_s": rates[best], "connections": best, "by_connections": rates}


async def ready_with_backlog(sims: Simulators, channels: str, work: Path, count: int, runs: int,
                             drain_window: float) -> dict[str, Any]:
    """Queue ``count``, kill, then time ``runs`` starts on copies of that database; the last one drains."""
    seed = DaemonProc(work / "backlog-seed", channels)
    await seed.start()
    recipients = await add_recipients(seed)
    async with DaemonClient(seed.socket) as client:
        await client.call("pause")  # every channel "down": nothing is attempted, everything queues
    queued = await enqueue(seed, recipients, 8, count)
    peak_queueing = seed.rss_mb()[1]
    await seed.kill()  # the backlog now lies on disk only
    ready = []
    result: dict[str, Any] = {}
    for run in range(runs):
        state = work / f"backlog-{run}"
        state.mkdir(parents=True)
        for file in seed.state.glob("fnotify.db*"):
            shutil.copy(file, state / file.name)
        daemon = DaemonProc(state, channels)
        began = time.perf_counter()
        ready.append(await daemon.start("status"))
        if run < runs - 1:
            await daemon.kill()
            continue
        # the drain's baseline is this daemon idle with its bot up (the seed's pause is stored in the
        # database it copied, so nothing is sent until resume): the growth is the backlog's, not aiogram's
        await wait_bot(sims, began)
        await asyncio.sleep(1)
        idle_rss = daemon.rss_mb()[0]
        # VmHWM counts from the spawn, aiogram's import included: start it again here ("5": reset the peak)
        with contextlib.suppress(OSError):
            Path(f"/proc/{daemon.pid}/clear_refs").write_text("5")
        async with DaemonClient(daemon.socket) as client:
            await client.call("resume")
        result = {"idle_rss_mb_before_drain": idle_rss, **await drain(daemon, queued["count"], drain_window)}
        await daemon.stop()
    return {"count": queued["count"], "enqueue_per_s": queued["per_s"], "peak_rss_mb_queueing": peak_queueing,
            "ready_s": statistics.median(ready), "ready_runs_s": ready, **result}


async def drain(daemon: DaemonProc, count: int, window: float) -> dict[str, Any]:
    began, delivered = time.perf_counter(), 0
    async with DaemonClient(daemon.socket) as client:
        while time.perf_counter() - began < window:
            await asyncio.sleep(0.5)
            delivered = (await client.call("status"))["counts"].get("delivered", 0)
            if delivered >= count:
                break
    drained_s = time.perf_counter() - began
    return {"drain_per_s": delivered / drained_s, "drained": delivered, "peak_rss_mb_draining": daemon.rss_mb()[1]}


async def idle_memory(sims: Simulators, channels: str, work: Path, seconds: float) -> dict[str, Any]:
    """Idle RSS with the bot (and its CPU over ``seconds``), then without Telegram at all."""
    daemon = DaemonProc(work / "idle", channels)
    times = await start_with_bot(daemon, sims)
    await asyncio.sleep(1)
    cpu0 = daemon.cpu_seconds()
    await asyncio.sleep(seconds)
    with_bot = {"seconds": seconds, "cpu_s": daemon.cpu_seconds() - cpu0, "rss_mb": daemon.rss_mb()[0], **times}
    await daemon.stop()
    daemon = DaemonProc(work / "idle-no-telegram", without_telegram(channels))
    await daemon.start("status")
    await asyncio.sleep(3)
    without = {"rss_mb": daemon.rss_mb()[0]}
    await daemon.stop()
    return {"with_bot": with_bot, "without_bot": without}


READY_TARGET_S = 1.0
DRAIN_GROWTH_TARGET_MB = 30.0


async def run(ctx: Any) -> dict[str, Any]:
    """``--only startup``: ready with the backlog, its drain, then idle memory."""
    a = ctx.args
    backlog = await ready_with_backlog(ctx.sims, ctx.channels, ctx.work, a.backlog, a.ready_runs, a.drain_window)
    return {"backlog": backlog, "idle": await idle_memory(ctx.sims, ctx.channels, ctx.work, 10.0)}


def rows(r: dict[str, Any]) -> list[Row]:
    if "backlog" not in r:
        return []
    b, i = r["backlog"], r["idle"]
    bot = i["with_bot"]
    idle_bot, idle_bare = bot["rss_mb"], i["without_bot"]["rss_mb"]
    runs = ", ".join(f"{s:.2f}" for s in b["ready_runs_s"])
    idle_before = b["idle_rss_mb_before_drain"]
    growth = b["peak_rss_mb_draining"] - idle_before
    return [
        Row(f"ready with {b['count'] // 1000}k backlog (spawn -> status answered, Telegram on)",
            f"{b['ready_s']:.2f} s",
            target=f"< {READY_TARGET_S:g} s: {'met' if b['ready_s'] < READY_TARGET_S else 'NOT met'}",
            detail=f"median of {runs} s; bot answering {bot['bot_s']:.2f} s after spawn (empty database)"),
        Row("backlog: drain rate", f"{b['drain_per_s']:,.0f}/s", detail=f"{b['drained']:,} in the window"),
        Row("idle RSS with the bot / without Telegram", f"{idle_bot:.0f} MiB",
            detail=f"{idle_bare:.0f} MiB without; {bot['cpu_s']:.2f} s CPU in {bot['seconds']:.0f} s"),
        Row("drain peak RSS minus idle RSS (same daemon, bot up)", f"{growth:.1f} MiB", f"idle {idle_before:.0f} MiB",
            target=f"< {DRAIN_GROWTH_TARGET_MB:g} MiB: {'met' if growth < DRAIN_GROWTH_TARGET_MB else 'NOT met'}",
            detail=f"peak {b['peak_rss_mb_draining']:.0f} MiB draining, {b['peak_rss_mb_queueing']:.0f} MiB queueing"),
    ]
