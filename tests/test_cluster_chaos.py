"""Cluster chaos: three daemon processes on one PostgreSQL, 3,000 notifications sent through all three
sockets, random provider faults in the three simulators, and daemons SIGKILLed and restarted several
times (the bot's leader among them, so the polling moves). At the end every notification is final and
none is lost; a notification reached a provider twice only if one of its attempts was recorded
``interrupted`` (in flight at a kill, at-least-once), and those are counted; and the Telegram simulator,
which answers a second concurrent ``getUpdates`` with 409 as Telegram does, counted no such conflict:
never two pollers at once. The single-daemon version on SQLite is tests/test_chaos.py."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path

import asyncpg
import pytest

from daemon.client import DaemonClient, DaemonUnavailable
from daemon.core.models import FINAL_STATUSES
from daemon.core.store import BOT_ROLE
from daemon.simulators.suite import SimulatorSuite
from tests.daemon_process import DaemonProcess, write_config
from tests.test_bot import ANN_CHAT
from tests.test_chaos import NOTIFICATIONS, RECIPIENTS, delivered_tokens, inject_chaos, send_all

NODES = ("a", "b", "c")
SENDERS_PER_NODE = 3
KILLS = 4
LEASE = 5.0  # short, so that a dead daemon's claims and the bot's lease are taken over within seconds; 2-3 s
# made live leases run out under load on a busy 2-core machine (daemons taking each other's rows in turn)


def node(root: Path, name: str, url: str, suite: SimulatorSuite) -> DaemonProcess:
    state = root / name
    state.mkdir()
    sections = suite.config_sections()  # the bot polls (the simulator has no webhook set)
    sections["telegram"].update(rate_global=5000.0, rate_per_chat=1000.0)
    sections["retry"] = {"attempts_per_channel": 3, "backoff_initial": 0.05, "backoff_max": 0.3}
    sections["breaker"] = {"threshold": 8, "cooldown": 0.5}
    sections["storage"] = {"url": url, "lease": LEASE}
    return DaemonProcess(write_config(root / f"{name}.toml", state, sections), state / "fnotify.sock",
                         root / f"{name}.log")


async def bot_leader(nodes: dict[str, DaemonProcess]) -> str | None:
    """The node whose daemon leads the bot, as any live daemon's status tells (None: no leader now)."""
    for process in nodes.values():
        if process.proc is None or process.proc.returncode is not None:
            continue
        try:
            async with DaemonClient(process.socket_path, timeout=5) as client:
                members = (await client.call("status"))["members"]
        except DaemonUnavailable:
            continue
        leaders = [m["pid"] for m in members if BOT_ROLE in m["leads"]]
        for name, candidate in nodes.items():
            if candidate.proc is not None and candidate.proc.pid in leaders:
                return name
        return None
    return None


async def kill_and_restart(nodes: dict[str, DaemonProcess], rng: random.Random) -> list[str]:
    """KILLS SIGKILLs at random moments. Every other one is of the bot's leader, restarted at once (as
    systemd's Restart= would): it takes its predecessor's claims back as it starts. The others stay
    down for a lease and a half: the live daemons take their claims over when the leases run out."""
    killed = []
    for k in range(KILLS):
        await asyncio.sleep(rng.uniform(0.5, 2.0))
        victim = None
        for _ in range(100 if k % 2 == 0 else 0):  # bounded: 10 s for the bot to have a leader
            if victim := await bot_leader(nodes):
                break
            await asyncio.sleep(0.1)
        name = victim or rng.choice(NODES)
        killed.append(f"{name}{' (bot leader)' if victim else ''}")
        nodes[name].kill()
        await nodes[name].wait()
        if not victim:
            await asyncio.sleep(LEASE * 1.5)
        await nodes[name].start(timeout=60)
    return killed


async def wait_all_final(url: str, timeout: float) -> None:
    conn = await asyncpg.connect(url)
    try:
        async with asyncio.timeout(timeout):
            while await conn.fetchval("SELECT count(*) FROM notifications WHERE status <> ALL ($1::text[])",
                                      sorted(FINAL_STATUSES)):
                await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def read_outcome(url: str) -> tuple[
        list[asyncpg.Record], Counter[str], Counter[str], set[str], dict[str, list[str]]]:
    """The notifications (key, status), the attempts by outcome, the interrupted attempts by
    notification key, and the keys of notifications a provider accepted an attempt of."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT idempotency_key, status FROM notifications")
        ids = {r[0]: r[1] for r in await conn.fetch("SELECT idempotency_key, id FROM notifications")}
        outcomes = Counter({r["outcome"]: r["n"] for r in await conn.fetch(
            "SELECT outcome, count(*) AS n FROM attempts GROUP BY outcome")})
        with_outcome = ("SELECT n.idempotency_key FROM attempts a JOIN notifications n"
                        " ON n.id = a.notification_id WHERE a.outcome = $1")
        interrupted = Counter(r[0] for r in await conn.fetch(with_outcome, "interrupted"))
        accepted = {r[0] for r in await conn.fetch(with_outcome, "delivered")}
        attempts: dict[str, list[str]] = {}
        for r in await conn.fetch("SELECT n.idempotency_key, a.channel, a.outcome, a.error, a.started_at"
                                  " FROM attempts a JOIN notifications n ON n.id = a.notification_id ORDER BY a.id"):
            attempts.setdefault(r[0], []).append(f"{r[4]:%H:%M:%S.%f} {r[1]} {r[2]} {r[3]}")
        attempts = {key: [f"notification {ids[key]}:", *lines] for key, lines in attempts.items()}
    finally:
        await conn.close()
    return rows, outcomes, interrupted, accepted, attempts


@pytest.mark.timeout(300)  # a load test: the limit only catches a hang
async def test_cluster_chaos_loses_nothing_duplicates_only_interrupted_attempts_and_never_polls_twice(
    short_tmp: Path, pg_database: str, suite: SimulatorSuite
) -> None:
    rng = random.Random(20261203)
    nodes = {name: node(short_tmp, name, pg_database, suite) for name in NODES}
    began = time.monotonic()
    try:
        for process in nodes.values():
            await process.start()
        async with DaemonClient(nodes["a"].socket_path) as client:
            for r in range(RECIPIENTS):
                await client.call("recipient.add", name=f"user{r}", telegram_chat_id=10_000 + r,
                                  email=f"user{r}@example.com", phone=f"+1415555{r:04d}")
        inject_chaos(suite)
        senders = [nodes[name] for name in NODES for _ in range(SENDERS_PER_NODE)]  # every socket
        sending = asyncio.gather(*(send_all(process, list(range(k, NOTIFICATIONS, len(senders))))
                                   for k, process in enumerate(senders)))
        killed = await kill_and_restart(nodes, rng)
        await asyncio.wait_for(sending, timeout=180)
        await wait_all_final(pg_database, timeout=60)
        took = time.monotonic() - began
        suite.telegram.faults.clear()
        before = len(suite.telegram.messages_to(ANN_CHAT))
        suite.telegram.user_sends(ANN_CHAT, "/help")  # the bot survived it all: one daemon answers
        async with asyncio.timeout(LEASE * 5):
            while len(suite.telegram.messages_to(ANN_CHAT)) == before:
                await asyncio.sleep(0.05)
        for process in nodes.values():
            assert await process.terminate() == 0
    finally:
        for process in nodes.values():
            if process.proc is not None and process.proc.returncode is None:
                process.kill()
                await process.wait()

    rows, outcomes, interrupted, accepted, attempts = await read_outcome(pg_database)
    deliveries = delivered_tokens(suite)
    keys = Counter(key for key, _ in rows)
    statuses = Counter(status for _, status in rows)
    assert len(rows) == NOTIFICATIONS and set(keys) == {f"chaos-{i}" for i in range(NOTIFICATIONS)}  # none lost
    assert max(keys.values()) == 1  # a send retried on a restarted daemon made no second notification
    assert set(statuses) <= FINAL_STATUSES, statuses  # every one final
    assert statuses["delivered"] > NOTIFICATIONS * 0.95, statuses  # the faults are transient mostly
    for key, status in rows:  # delivered exactly where a provider accepted an attempt
        assert (status == "delivered") == (key in accepted), (key, status)
        if status == "delivered":
            assert deliveries[int(key.removeprefix("chaos-"))] >= 1, key
    logs = "".join(process.log() for process in nodes.values())
    gone, expired = logs.count("is gone (its process no longer runs)"), logs.count("whose lease expired")
    duplicates = {i: n for i, n in deliveries.items() if n > 1}
    extra = sum(n - 1 for n in duplicates.values())
    print(f"\ncluster chaos: {NOTIFICATIONS} notifications through {len(NODES)} daemons on PostgreSQL,"
          f" {KILLS} SIGKILLs ({', '.join(killed)}), {took:.1f} s in all; statuses {dict(statuses)};"
          f" attempts {dict(outcomes)}; {len(duplicates)} notification(s) delivered more than once"
          f" ({extra} extra deliveries): {sorted(duplicates.items())[:50]};"
          f" poll conflicts {suite.telegram.poll_conflicts}; claims taken from a dead process at a restart"
          f" {gone} time(s), from expired leases {expired} time(s)")
    for i, n in duplicates.items():  # only attempts in flight at a kill (or a lease taken over) repeat
        assert n - 1 <= interrupted[f"chaos-{i}"], (i, n, attempts[f"chaos-{i}"], [
            line for line in logs.splitlines() if f"{attempts[f'chaos-{i}'][0][:-1]} " in line
            or f"{attempts[f'chaos-{i}'][0]}" in line])
    assert gone >= 1 and expired >= 1  # both ways of taking a dead daemon's claims over were exercised
    assert any("bot leader" in k for k in killed)  # the polling moved at least once...
    assert suite.telegram.poll_conflicts == 0  # ...and never were two daemons polling at once
