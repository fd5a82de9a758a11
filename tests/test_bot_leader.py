"""The bot runs once per cluster: leadership by lease row, members' heartbeats and Telegram updates
de-duplicated by update_id. The store rules run against both stores (injected time); the takeover runs
two real daemon processes on a real PostgreSQL against the Telegram simulator, which answers a second
concurrent getUpdates with 409 like Telegram and counts it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from daemon.client import DaemonClient
from daemon.core.store import BOT_ROLE
from daemon.simulators.suite import SimulatorSuite
from tests.conftest import RunningDaemon, stop_daemon
from tests.daemon_process import DaemonProcess, write_config
from tests.test_bot import ANN_CHAT, chat_texts, eventually, say, start
from tests.test_store_contract import A, B, Opener, at
from tests.test_store_contract import open_store as open_store  # the fixture

LEASE = 30


async def test_one_daemon_leads_until_its_lease_runs_out_and_its_renewal_then_fails(open_store: Opener) -> None:
    a, b = await open_store(), await open_store()
    assert await a.lead(BOT_ROLE, A, at(0), at(LEASE)) is True
    assert await b.lead(BOT_ROLE, B, at(1), at(1 + LEASE)) is False  # a live lease is never taken
    assert await a.lead(BOT_ROLE, A, at(15), at(15 + LEASE)) is True  # renewed at half the lease
    assert await b.lead(BOT_ROLE, B, at(40), at(40 + LEASE)) is False  # still A's: renewed until 45
    assert await b.lead(BOT_ROLE, B, at(45), at(45 + LEASE)) is True  # ran out: B takes over
    assert await a.lead(BOT_ROLE, A, at(46), at(46 + LEASE)) is False  # A's renewal matches nothing now


async def test_a_telegram_update_is_handled_once_whichever_daemon_sees_it(open_store: Opener) -> None:
    a, b = await open_store(), await open_store()
    assert await a.first_time_update(1001, at(0)) is True
    assert await b.first_time_update(1001, at(1)) is False
    assert await b.first_time_update(1002, at(1)) is True


async def test_members_show_their_heartbeats_and_which_one_leads(open_store: Opener) -> None:
    a, b = await open_store(), await open_store()
    now = at(0).replace(year=2099)  # members() reads leases against the real clock: these are live
    await a.heartbeat(A, now, now, at(0))
    await b.heartbeat(B, now, now, at(0))
    assert await a.lead(BOT_ROLE, A, now, now.replace(year=2100))
    members = {m.id: m for m in await b.members()}
    assert set(members) == {A, B} and members[A].leads == (BOT_ROLE,) and members[B].leads == ()
    await a.leave(A)
    assert [m.id for m in await b.members()] == [B]
    assert await b.lead(BOT_ROLE, B, now, now.replace(year=2100))  # leaving gave the role up


async def test_an_update_delivered_twice_is_answered_once(short_tmp: Path, suite: SimulatorSuite) -> None:
    daemon = await start(short_tmp, suite)
    try:
        update = suite.telegram.user_sends(ANN_CHAT, "/help")
        suite.telegram.push_update(update)  # the same update again, as a new bot leader re-polling sees it
        await eventually(lambda: _true(len(chat_texts(suite, ANN_CHAT)) >= 1))
        await say(suite, ANN_CHAT, "/help")  # a later, distinct update: answered
        assert len(chat_texts(suite, ANN_CHAT)) == 2
    finally:
        await stop_daemon(daemon)


def node(root: Path, name: str, url: str, suite: SimulatorSuite, lease: float) -> DaemonProcess:
    state = root / name
    state.mkdir()
    sections = {"telegram": suite.config_sections()["telegram"], "storage": {"url": url, "lease": lease}}
    config = write_config(root / f"{name}.toml", state, sections)
    return DaemonProcess(config, state / "fnotify.sock", root / f"{name}.log")


async def leader_of(process: DaemonProcess) -> str | None:
    async with DaemonClient(process.socket_path) as client:
        status = await client.call("status")
    leaders = [m["id"] for m in status["members"] if BOT_ROLE in m["leads"]]
    assert len(leaders) <= 1
    return leaders[0] if leaders else None


@pytest.mark.timeout(90)
async def test_when_the_bot_leader_is_killed_another_daemon_answers_within_the_lease(
    short_tmp: Path, pg_database: str, suite: SimulatorSuite
) -> None:
    lease = 2.0
    nodes = [node(short_tmp, n, pg_database, suite, lease) for n in ("a", "b")]
    for process in nodes:
        await process.start()
    try:
        async with asyncio.timeout(60):  # the bot comes up after READY, once aiogram is loaded
            while not any("updates by long polling" in n.log() for n in nodes):
                await asyncio.sleep(0.1)
        await say(suite, ANN_CHAT, "/help")  # the leader answers
        leader = await leader_of(nodes[0])
        assert leader is not None and leader == await leader_of(nodes[1])
        dead = nodes[0] if f":{nodes[0].proc.pid}:" in leader else nodes[1]  # type: ignore[union-attr]
        alive = nodes[1] if dead is nodes[0] else nodes[0]
        # the standby loads aiogram in the background after READY (seconds on a busy machine); from
        # then on a takeover is a lease away
        async with asyncio.timeout(60):
            while "ready to take over polling" not in alive.log():
                await asyncio.sleep(0.1)
        await asyncio.sleep(lease * 2)  # several renewals: still one poller
        dead.kill()
        await dead.wait()
        killed_at = time.monotonic()
        before = len(suite.telegram.messages_to(ANN_CHAT))
        suite.telegram.user_sends(ANN_CHAT, "/start")
        async with asyncio.timeout(lease * 3):
            while len(suite.telegram.messages_to(ANN_CHAT)) == before:
                await asyncio.sleep(0.05)
        took = time.monotonic() - killed_at
        assert took < lease * 1.5 + 1.0, took  # the lease ran out, the next round took over
        new_leader = await leader_of(alive)
        assert new_leader is not None and new_leader != leader
        assert suite.telegram.poll_conflicts == 0
        assert "stops leading" not in alive.log()
    finally:
        for process in nodes:
            if process.proc is not None and process.proc.returncode is None:
                await process.terminate()


async def test_status_lists_a_lone_sqlite_daemon_as_its_only_member_and_bot_leader(
    short_tmp: Path, suite: SimulatorSuite
) -> None:
    daemon: RunningDaemon = await start(short_tmp, suite)
    try:
        members = (await daemon.call("status"))["members"]
    finally:
        await stop_daemon(daemon)
    assert [(m["id"], m["leads"], m["self"]) for m in members] == [(daemon.daemon.owner, [BOT_ROLE], True)]



async def _true(value: bool) -> bool:
    return value
