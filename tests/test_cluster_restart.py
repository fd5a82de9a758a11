"""A daemon restarted alone on PostgreSQL takes its dead predecessor's claims back at once, as SQLite
does through its lock file, instead of waiting a whole lease: the member row of a daemon of the same
node (boot and pid namespace) whose process is gone says so. A live process, a pid in another node, or
anything unreadable keeps the lease (daemon/storage/local_process.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from daemon.client import DaemonClient
from daemon.core.models import Channel, NewNotification
from daemon.database_url import parse_postgres_url
from daemon.simulators.suite import SimulatorSuite
from daemon.storage.local_process import node_id
from daemon.storage.postgres import PostgresStore
from tests.daemon_process import DaemonProcess, write_config

LEASE = 30.0  # the default: a restart that waited for it would miss every deadline below
GHOST = "ghost:1:0000"


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.mark.parametrize(("what", "taken"), [
    ("its pid runs no process", True),
    ("its pid runs a process started after it (a reused pid)", True),
    ("its process runs", False),
    ("its pid is of another node (another machine or container)", False),
])
async def test_the_claims_of_a_member_of_this_node_whose_process_is_gone_are_taken_back_at_start(
    pg_database: str, what: str, taken: bool
) -> None:
    now = datetime.now(UTC)
    pid, started, node = {
        "its pid runs no process": (dead_pid(), now, node_id()),
        "its pid runs a process started after it (a reused pid)": (os.getpid(), now - timedelta(days=30), node_id()),
        "its process runs": (os.getpid(), now, node_id()),
        "its pid is of another node (another machine or container)": (dead_pid(), now, "other-boot/pid:[1]"),
    }[what]
    store = PostgresStore(parse_postgres_url(pg_database), "me:2:0000")
    await store.open()
    try:
        recipient = await store.add_recipient("Ann", "ann@example.com", None, None)
        made, _ = await store.create_notification(NewNotification(recipient.id, "hi", (Channel.EMAIL,)), now)
        assert [n.id for n in await store.claim_due(now, 10, GHOST, now + timedelta(seconds=LEASE))] == [made.id]
        await store.start_attempt(made.id, Channel.EMAIL, now, 1, GHOST)
        conn = await asyncpg.connect(pg_database)
        try:
            await conn.execute("INSERT INTO cluster_members (id, host, pid, started_at, heartbeat_at, node)"
                               " VALUES ($1, 'h', $2, $3, $3, $4)", GHOST, pid, started, node)
            await store.recover_interrupted(now + timedelta(seconds=1), "me:2:0000")
            claimed_by = await conn.fetchval("SELECT claimed_by FROM notifications WHERE id = $1", made.id)
            members = await conn.fetchval("SELECT count(*) FROM cluster_members WHERE id = $1", GHOST)
            outcomes = [r[0] for r in await conn.fetch("SELECT outcome FROM attempts WHERE notification_id = $1",
                                                       made.id)]
        finally:
            await conn.close()
    finally:
        await store.close()
    assert (claimed_by is None, members == 0) == (taken, taken), what
    assert outcomes == (["interrupted"] if taken else [None]), what


@pytest.mark.timeout(60)
async def test_a_daemon_killed_and_restarted_alone_retries_its_interrupted_attempt_at_once(
    short_tmp: Path, pg_database: str, suite: SimulatorSuite
) -> None:
    sections = {"email": suite.config_sections()["email"], "storage": {"url": pg_database, "lease": LEASE}}
    daemon = DaemonProcess(write_config(short_tmp / "fnotify.toml", short_tmp, sections),
                           short_tmp / "fnotify.sock", short_tmp / "daemon.log")
    await daemon.start()
    try:
        suite.smtp.faults.inject("latency", delay=20.0)  # the attempt hangs at the provider
        async with DaemonClient(daemon.socket_path) as client:
            ann = await client.call("recipient.add", name="Ann", email="ann@example.com")
            nid = (await client.call("send", recipient_id=ann["id"], message="in flight"))["id"]
            async with asyncio.timeout(10):
                while (await client.call("show", id=nid))["status"] != "sending":
                    await asyncio.sleep(0.05)
        daemon.kill()
        await daemon.wait()
        suite.smtp.faults.clear()
        await daemon.start()
        restarted = asyncio.get_running_loop().time()
        async with DaemonClient(daemon.socket_path) as client, asyncio.timeout(LEASE / 3):
            while (shown := await client.call("show", id=nid))["status"] != "delivered":
                await asyncio.sleep(0.05)
        took = asyncio.get_running_loop().time() - restarted
        emailed = [a["outcome"] for a in shown["attempts"] if a["channel"] == "email"]
        assert emailed == ["interrupted", "delivered"], shown["attempts"]
        assert "is gone (its process no longer runs): took its claims back at once, 1 attempt(s)" in daemon.log()
        assert took < 5, took
    finally:
        if daemon.proc is not None and daemon.proc.returncode is None:
            await daemon.terminate()
