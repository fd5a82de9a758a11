"""Snapshots of the main screens at 80x24 (pytest-textual-snapshot; update with --snapshot-update).

``snap_compare`` runs the app with its own ``asyncio.run``, so the daemon serves from a thread
with its own loop. Everything on screen is made deterministic: the daemon's clock and retry jitter
are frozen, the app renders in UTC with the same frozen clock, and ids come from a fresh database.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, TextArea

from daemon.core.models import Channel, Outcome, Status
from daemon.core.store import AttemptRecord, NotificationUpdate
from daemon.simulators.suite import SimulatorSuite
from tests.conftest import RunningDaemon, make_config, start_daemon, stop_daemon
from tui.app import FnotifyApp
from tui.screens.detail import NotificationDetailScreen
from tui.screens.health import HealthScreen
from tui.screens.notifications import NotificationsScreen
from tui.screens.recipients import RecipientsScreen
from tui.screens.send import SendScreen

FROZEN = datetime(2030, 1, 15, 9, 30, tzinfo=UTC)  # in the future: no retry timer fires during a test
T = TypeVar("T")


class ThreadedDaemon:
    """The simulators and a daemon on an event loop of their own, in a background thread."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.suite = SimulatorSuite()
        self.running: RunningDaemon | None = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> RunningDaemon:
        self.thread.start()
        self.run(self.suite.start())
        config = make_config(self.state_dir, **self.suite.config_sections(),
                             retry={"attempts_per_channel": 3, "backoff_initial": 30.0, "backoff_max": 60.0})
        self.running = self.run(start_daemon(config))
        self.running.daemon.service.clock = lambda: FROZEN
        self.running.daemon.engine.clock = lambda: FROZEN
        self.running.daemon.engine.rng = random.Random(0)
        return self.running

    def stop(self) -> None:
        if self.running is not None:
            self.run(stop_daemon(self.running))
        self.run(self.suite.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


async def seed(daemon: RunningDaemon, suite: SimulatorSuite) -> None:
    """Four notifications, one per status worth seeing: delivered, sending (retrying), failed, cancelled."""
    alice = (await daemon.call("recipient.add", name="Alice Ops", telegram_chat_id=1001,
                               email="alice@example.com"))["id"]
    bob = (await daemon.call("recipient.add", name="Bob Oncall", telegram_chat_id=2002, email="bob@example.com",
                             phone="+14155550100"))["id"]
    carol = (await daemon.call("recipient.add", name="Carol", email="carol@example.org"))["id"]
    suite.telegram.faults.inject("permanent", target=2002)
    suite.smtp.faults.inject("error", target="bob@example.com")

    async def until(notification_id: int, done: Callable[[dict[str, Any]], bool]) -> None:
        async with asyncio.timeout(10):
            while not done(await daemon.call("show", id=notification_id)):
                await asyncio.sleep(0.02)

    def retrying(n: dict[str, Any]) -> bool:
        return any(a["outcome"] == "retry" for a in n["attempts"])

    sent = await daemon.call("send", recipient_id=alice, message="Deploy 4.2 rolled out to prod")
    await daemon.wait_final(sent["id"])
    sent = await daemon.call("send", recipient_id=bob, subject="db-1 disk",
                             message="Disk full on db-1: /var at 97%\nfree: 1.2 GB of 40 GB")
    await until(sent["id"], retrying)
    sent = await daemon.call("send", recipient_id=carol, message="Backup finished in 12 min", chain=["sms"])
    await daemon.wait_final(sent["id"])
    sent = await daemon.call("send", recipient_id=bob, message="Cert for api.example.com expires in 5 days")
    await until(sent["id"], retrying)
    await daemon.call("cancel", id=sent["id"])


async def seed_history(daemon: RunningDaemon) -> None:
    """An hour of attempts before FROZEN for the health screen's sparklines and p50 / p95: written
    through the store's own attempt calls (as the engine writes them) with chosen start and finish
    times, onto the delivered notifications #1 (Telegram) and #3 (SMS), whose status they leave alone.
    Telegram delivers all hour with a burst of retries; email only fails; SMS delivers now and then."""
    store = daemon.daemon.store
    done = NotificationUpdate(Status.DELIVERED, 0, 1, None)

    async def attempt(notification_id: int, channel: Channel, minute: int, outcome: Outcome, ms: int) -> None:
        started = FROZEN - timedelta(minutes=59 - minute, seconds=-10)
        attempt_id = await store.start_attempt(notification_id, channel, started, 1)
        record = AttemptRecord(outcome, None if outcome is Outcome.DELIVERED else "simulated", sent_at=started)
        await store.finish_attempt(attempt_id, notification_id, channel, record, done,
                                   started + timedelta(milliseconds=ms))

    for minute in range(60):
        for n in range((minute * 7) % 5 + 1):
            await attempt(1, Channel.TELEGRAM, minute, Outcome.DELIVERED, 40 + (minute * 13 + n * 29) % 90)
        if 38 <= minute < 46:
            await attempt(1, Channel.TELEGRAM, minute, Outcome.RETRY, 900 + minute * 10)
        if minute >= 50:
            await attempt(1, Channel.EMAIL, minute, Outcome.FAILED if minute % 2 else Outcome.RETRY, 150)
        if minute % 12 == 5:
            await attempt(3, Channel.SMS, minute, Outcome.DELIVERED, 350 + minute)


@pytest.fixture
def seeded(short_tmp: Path) -> Iterator[Path]:
    """The socket of a daemon holding the four seeded notifications."""
    threaded = ThreadedDaemon(short_tmp)
    running = threaded.start()
    try:
        threaded.run(seed(running, threaded.suite))
        yield running.config.daemon.socket_path
    finally:
        threaded.stop()


@pytest.fixture
def seeded_hour(short_tmp: Path) -> Iterator[Path]:
    """``seeded``, plus an hour of attempt history."""
    threaded = ThreadedDaemon(short_tmp)
    running = threaded.start()
    try:
        threaded.run(seed(running, threaded.suite))
        threaded.run(seed_history(running))
        yield running.config.daemon.socket_path
    finally:
        threaded.stop()


def make_app(socket_path: Path) -> FnotifyApp:
    return FnotifyApp(socket_path, tz=UTC, clock=lambda: FROZEN, retry_initial=0.05, retry_max=0.2)


async def settle(pilot: Pilot[None], condition: Callable[[], object], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await pilot.pause(0.02)
    for widget in pilot.app.screen.query(Input):  # a blinking cursor would make the snapshot flaky
        widget.cursor_blink = False
    for area in pilot.app.screen.query(TextArea):
        area.cursor_blink = False
    await pilot.pause(0.1)


def home_loaded(app: FnotifyApp) -> bool:
    screen = app.screen_stack[0]
    return isinstance(screen, NotificationsScreen) and screen.loaded and len(app.recipients) == 3


def test_the_notifications_table_at_80x24(seeded: Path, snap_compare: Callable[..., bool]) -> None:
    app = make_app(seeded)

    async def run_before(pilot: Pilot[None]) -> None:
        screen = app.screen_stack[0]
        assert isinstance(screen, NotificationsScreen)
        await settle(pilot, lambda: home_loaded(app) and len(screen.notifications) == 4)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_the_detail_of_a_failover_waiting_to_retry(seeded: Path, snap_compare: Callable[..., bool]) -> None:
    app = make_app(seeded)

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot, lambda: home_loaded(app))
        await pilot.press("down", "down", "enter")  # #2, Bob's disk alert
        await settle(pilot, lambda: isinstance(app.screen, NotificationDetailScreen)
                     and app.screen.notification is not None)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_the_send_form_with_a_daemon_error_under_the_message(
    seeded: Path, snap_compare: Callable[..., bool],
) -> None:
    app = make_app(seeded)

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot, lambda: home_loaded(app))
        await pilot.press("s")
        await settle(pilot, lambda: isinstance(app.screen, SendScreen))
        await pilot.press("b", "o", "enter")
        await pilot.press("ctrl+s")  # no message: the daemon refuses, the form says so under the field
        await settle(pilot, lambda: app.screen.query_one("#message-error").display)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_the_recipients_list(seeded: Path, snap_compare: Callable[..., bool]) -> None:
    app = make_app(seeded)

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot, lambda: home_loaded(app))
        await pilot.press("r")
        await settle(pilot, lambda: isinstance(app.screen, RecipientsScreen))

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_channel_health_shows_telegram_degraded_and_email_failing(
    seeded_hour: Path, snap_compare: Callable[..., bool],
) -> None:
    """Per channel: verdict, breaker, counts, p50 / p95, and the hour's sparklines, at 80x24."""
    app = make_app(seeded_hour)

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot, lambda: home_loaded(app))
        await pilot.press("h")
        await settle(pilot, lambda: isinstance(app.screen, HealthScreen) and app.screen.loaded)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_without_a_daemon_the_banner_says_where_it_keeps_trying(snap_compare: Callable[..., bool]) -> None:
    app = make_app(Path("/nonexistent/fnotify.sock"))

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot, lambda: app.daemon_problem is not None)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
