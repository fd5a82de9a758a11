"""The TUI driven by Pilot against a real daemon on a real Unix socket."""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import Input, Static, TextArea

from daemon.simulators.suite import SimulatorSuite
from tests.conftest import RunningDaemon, make_config, start_daemon, stop_daemon
from tui.app import FnotifyApp
from tui.connection import Connected, Disconnected
from tui.screens.detail import NotificationDetailScreen
from tui.screens.health import HealthScreen
from tui.screens.link import LinkScreen
from tui.screens.notifications import NotificationsScreen
from tui.screens.recipient_edit import RecipientEditScreen
from tui.screens.recipients import RecipientsScreen, RecipientTable
from tui.screens.send import SendScreen
from tui.widgets.attempt_timeline import AttemptTimeline
from tui.widgets.banner import ConnectionBanner
from tui.widgets.form_errors import FieldError
from tui.widgets.notification_table import NotificationTable

SIZE = (100, 30)


def make_app(socket_path: Path) -> FnotifyApp:
    return FnotifyApp(socket_path, tz=UTC, retry_initial=0.05, retry_max=0.2)


async def wait_for(pilot: Pilot[None], condition: Callable[[], object], timeout: float = 10.0) -> None:
    """Let the app run until ``condition()`` holds (fails the test after ``timeout`` seconds)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await pilot.pause(0.02)


async def type_text(pilot: Pilot[None], text: str) -> None:
    await pilot.press(*["space" if c == " " else c for c in text])


def home(app: FnotifyApp) -> NotificationsScreen:
    screen = app.screen_stack[0]
    assert isinstance(screen, NotificationsScreen)
    return screen


def rendered(static: Static, width: int = SIZE[0]) -> str:
    """What a Static shows, as plain text (its content may be any Rich renderable)."""
    content = static.content
    if isinstance(content, str):
        return content
    console = Console(width=width, file=io.StringIO(), record=True)
    console.print(content)
    return "\n".join(line.rstrip() for line in console.export_text().splitlines())


async def ready(pilot: Pilot[None], recipients: int = 0) -> None:
    app = pilot.app
    assert isinstance(app, FnotifyApp)
    await wait_for(pilot, lambda: home(app).loaded and len(app.recipients) >= recipients)


async def add_recipient(daemon: RunningDaemon, **fields: Any) -> int:
    return int((await daemon.call("recipient.add", **fields))["id"])


# -- sending and watching -------------------------------------------------------------------------

async def send_from_the_form(pilot: Pilot[None], search: str, message: str) -> NotificationDetailScreen:
    await pilot.press("s")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, SendScreen))
    await type_text(pilot, search)
    await pilot.press("enter")  # -> subject
    await type_text(pilot, "Disk")
    await pilot.press("tab")  # -> message
    await type_text(pilot, message)
    await pilot.press("ctrl+s")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, NotificationDetailScreen))
    detail = pilot.app.screen
    assert isinstance(detail, NotificationDetailScreen)
    return detail


async def test_a_send_from_the_form_opens_its_detail_and_the_row_reaches_failed_when_every_channel_is_off(
    bare_daemon: RunningDaemon,
) -> None:
    await add_recipient(bare_daemon, name="Alice", email="alice@example.com")
    app = make_app(bare_daemon.config.daemon.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, recipients=1)
        detail = await send_from_the_form(pilot, "ali", "db-1 is 97% full")
        await wait_for(pilot, lambda: detail.notification is not None and detail.notification["status"] == "failed")
        assert detail.notification is not None
        assert [a["outcome"] for a in detail.notification["attempts"]] == ["skipped"] * 3
        timeline = rendered(detail.query_one(AttemptTimeline))
        assert timeline.count("channel disabled") == 3 and "fail over to email" in timeline
        assert detail.notification["subject"] == "Disk" and detail.notification["text"] == "db-1 is 97% full"

        await pilot.press("escape")
        table = home(app).query_one(NotificationTable)
        await wait_for(pilot, lambda: table.row_count == 1 and "failed" in str(table.get_row_at(0)))
        assert "db-1 is 97% full" in str(table.get_row_at(0)) and "Alice" in str(table.get_row_at(0))


@pytest.fixture
async def simulated_daemon(short_tmp: Path, suite: SimulatorSuite) -> AsyncIterator[RunningDaemon]:
    running = await start_daemon(make_config(short_tmp, **suite.config_sections()))
    yield running
    await stop_daemon(running)


async def test_a_send_from_the_form_is_delivered_by_the_simulators_and_the_row_turns_delivered(
    simulated_daemon: RunningDaemon,
) -> None:
    await add_recipient(simulated_daemon, name="Ann", email="ann@example.com", telegram_chat_id=1001)
    app = make_app(simulated_daemon.config.daemon.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, recipients=1)
        detail = await send_from_the_form(pilot, "ann", "deploy done")
        await wait_for(pilot, lambda: detail.notification is not None
                       and detail.notification["status"] == "delivered")
        assert detail.notification is not None
        assert [(a["channel"], a["outcome"]) for a in detail.notification["attempts"]] == [("telegram", "delivered")]
        await pilot.press("escape")
        table = home(app).query_one(NotificationTable)
        await wait_for(pilot, lambda: table.row_count == 1 and "delivered" in str(table.get_row_at(0)))
        assert "telegram" in str(table.get_row_at(0))


async def test_enter_on_a_row_opens_the_detail_with_text_and_attempt_timeline(bare_daemon: RunningDaemon) -> None:
    bob = await add_recipient(bare_daemon, name="Bob", phone="+14155550100")
    sent = await bare_daemon.call("send", recipient_id=bob, message="first line\nsecond line", chain="sms,email")
    await bare_daemon.wait_final(sent["id"])
    app = make_app(bare_daemon.config.daemon.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, recipients=1)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, NotificationDetailScreen)
                       and app.screen.notification is not None)
        detail = app.screen
        assert isinstance(detail, NotificationDetailScreen) and detail.notification_id == sent["id"]
        assert rendered(detail.query_one("#message-text", Static)) == "first line\nsecond line"
        summary = rendered(detail.query_one("#summary", Static))
        assert "Bob" in summary and "failed" in summary and "sms → email" in summary
        timeline = rendered(detail.query_one(AttemptTimeline))
        assert "sms" in timeline and "email" in timeline and timeline.count("skipped") == 2


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_cancel_in_the_detail_stops_a_notification_waiting_to_retry(short_tmp: Path) -> None:
    config = make_config(short_tmp, email={"enabled": True, "host": "127.0.0.1", "port": closed_port()},
                         retry={"backoff_initial": 30.0, "backoff_max": 60.0})
    daemon = await start_daemon(config)
    try:
        carol = await add_recipient(daemon, name="Carol", email="carol@example.com")
        sent = await daemon.call("send", recipient_id=carol, message="printer on fire", chain="email")
        app = make_app(config.daemon.socket_path)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot, recipients=1)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, NotificationDetailScreen)
                           and app.screen.notification is not None
                           and any(a["outcome"] == "retry" for a in app.screen.notification["attempts"]))
            assert "retry in" in rendered(app.screen.query_one(AttemptTimeline))
            await pilot.press("c")
            await pilot.press("y")
            detail = app.screen
            assert isinstance(detail, NotificationDetailScreen)
            await wait_for(pilot, lambda: detail.notification is not None
                           and detail.notification["status"] == "cancelled")
        assert (await daemon.call("show", id=sent["id"]))["status"] == "cancelled"
    finally:
        await stop_daemon(daemon)


async def test_the_send_form_shows_the_daemons_validation_errors_next_to_the_field(
    bare_daemon: RunningDaemon,
) -> None:
    await add_recipient(bare_daemon, name="Alice", email="alice@example.com")
    app = make_app(bare_daemon.config.daemon.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, recipients=1)
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SendScreen))
        await pilot.press("ctrl+s")  # no message
        error = app.screen.query_one("#message-error", FieldError)
        await wait_for(pilot, lambda: error.display)
        assert rendered(error) == "↑ must not be empty"
        app.screen.query_one("#message", TextArea).text = "hello"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, NotificationDetailScreen))
    assert len(await bare_daemon.call("list")) == 1


# -- recipients -----------------------------------------------------------------------------------

async def test_a_recipient_added_in_the_form_is_listed_and_a_bad_email_is_shown_inline(
    bare_daemon: RunningDaemon,
) -> None:
    app = make_app(bare_daemon.config.daemon.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, RecipientsScreen))
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, RecipientEditScreen))
        await type_text(pilot, "Dora Oncall")
        await pilot.press("tab")
        await type_text(pilot, "dora-at-example")
        await pilot.press("ctrl+s")
        error = app.screen.query_one("#email-error", FieldError)
        await wait_for(pilot, lambda: error.display)
        assert "@" in rendered(error)
        app.screen.query_one("#email", Input).value = "dora@example.com"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, RecipientsScreen) and len(app.recipients) == 1)
        assert "Dora Oncall" in str(app.screen.query_one(RecipientTable).get_row_at(0))
    [dora] = await bare_daemon.call("recipient.list")
    assert (dora["name"], dora["email"], dora["telegram_state"]) == ("Dora Oncall", "dora@example.com", "not linked")


async def test_the_recipient_form_sets_time_zone_and_quiet_hours_and_shows_the_daemons_refusals_under_them(
    bare_daemon: RunningDaemon,
) -> None:
    await add_recipient(bare_daemon, name="Ann", email="ann@example.com")
    app = make_app(bare_daemon.config.daemon.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, recipients=1)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, RecipientsScreen))
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, RecipientEditScreen))
        form = app.screen
        zone, window = form.query_one("#timezone", Input), form.query_one("#quiet_hours", Input)
        assert (zone.value, window.value) == ("UTC", "")
        zone_error, window_error = form.query_one("#timezone-error", FieldError), form.query_one("#quiet-hours-error",
                                                                                                  FieldError)
        zone.value, window.value = "Mars/Olympus", "22:00-07:00"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: zone_error.display)
        assert rendered(zone_error) == "↑ unknown time zone 'Mars/Olympus' (an IANA name, e.g. Europe/Moscow or UTC)"
        assert not window_error.display
        zone.value, window.value = "Europe/Moscow", "25:00-07:00"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: window_error.display)
        assert rendered(window_error) == "↑ '25:00-07:00': hours run 00..23"
        assert not zone_error.display
        window.value = "22:00-07:00"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, RecipientsScreen))
    [ann] = await bare_daemon.call("recipient.list")
    assert (ann["timezone"], ann["quiet_hours"], ann["email"]) == ("Europe/Moscow", "22:00-07:00", "ann@example.com")


async def test_an_opt_in_link_the_daemon_cannot_make_yet_is_explained_not_shown_as_an_error(
    bare_daemon: RunningDaemon,
) -> None:
    await add_recipient(bare_daemon, name="Eve")
    app = make_app(bare_daemon.config.daemon.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, recipients=1)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, RecipientsScreen))
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LinkScreen)
                       and "Telegram bot" in rendered(app.screen.query_one("#link-body", Static)))


async def test_an_opt_in_link_shows_url_and_qr_and_says_so_when_the_recipient_opens_it(
    simulated_daemon: RunningDaemon, suite: SimulatorSuite,
) -> None:
    await add_recipient(simulated_daemon, name="Finn", email="finn@example.com")
    app = make_app(simulated_daemon.config.daemon.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, recipients=1)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, RecipientsScreen))
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LinkScreen) and app.screen.query_one("#link-qr").display)
        body = rendered(app.screen.query_one("#link-body", Static))
        url = next(word for word in body.split() if word.startswith("https://t.me/"))
        assert "?start=" in url and "single use" in body
        assert "█" in rendered(app.screen.query_one("#link-qr", Static))

        suite.telegram.user_sends(4004, f"/start {url.split('?start=')[1]}")
        await wait_for(pilot, lambda: "is linked" in rendered(app.screen.query_one("#link-body", Static)))
        await wait_for(pilot, lambda: app.recipients[0]["telegram_state"] == "linked")


# -- filters, paging, health, palette ----------------------------------------------------------

async def test_search_and_paging_narrow_and_walk_the_table(bare_daemon: RunningDaemon,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tui.screens.notifications.PAGE_SIZE", 2)
    ann = await add_recipient(bare_daemon, name="Ann")
    for text in ("disk full", "backup ok", "disk cleaned"):
        await bare_daemon.call("send", recipient_id=ann, message=text)
    app = make_app(bare_daemon.config.daemon.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, recipients=1)
        screen = home(app)
        assert [n["text"] for n in screen.notifications] == ["disk cleaned", "backup ok"] and screen.has_older
        await pilot.press("n")
        await wait_for(pilot, lambda: [n["text"] for n in screen.notifications] == ["disk full"])
        await pilot.press("p")
        await wait_for(pilot, lambda: len(screen.notifications) == 2)
        await pilot.press("slash")
        await type_text(pilot, "disk")
        await wait_for(pilot, lambda: [n["text"] for n in screen.notifications] == ["disk cleaned", "disk full"])
        assert screen.filter.search == "disk"


async def test_health_says_each_channel_is_disabled_on_a_daemon_without_channels(
    bare_daemon: RunningDaemon,
) -> None:
    app = make_app(bare_daemon.config.daemon.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, HealthScreen)
                       and "telegram" in rendered(app.screen.query_one("#health-table", Static)))
        assert rendered(app.screen.query_one("#health-table", Static)).count("disabled") == 3


async def test_health_shows_the_sms_budget_used_today_the_caps_and_the_receipts_mode(short_tmp: Path) -> None:
    sms = {"daily_budget": 10, "recipient_limits": ["5/15m", "11/1h"]}
    running = await start_daemon(make_config(short_tmp, sms=sms))
    try:
        ann = await add_recipient(running, name="Ann", phone="+14155550100")
        now = running.daemon.service.clock()
        for segments in (3, 5):  # as the engine counts SMS the provider accepted today (UTC)
            await running.daemon.store.record_sms_sent(ann, now, segments)
        app = make_app(running.config.daemon.socket_path)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await pilot.press("h")
            await wait_for(pilot, lambda: isinstance(app.screen, HealthScreen) and app.screen.loaded)
            shown = rendered(app.screen.query_one("#daemon-status", Static))
    finally:
        await stop_daemon(running)
    assert "sms: 8/10 segments today (80 %) · receipts off\nsms caps 5/15m, 11/1h per recipient" in shown


async def test_the_command_palette_opens_a_notification_by_number(bare_daemon: RunningDaemon) -> None:
    ann = await add_recipient(bare_daemon, name="Ann")
    sent = await bare_daemon.call("send", recipient_id=ann, message="hello")
    app = make_app(bare_daemon.config.daemon.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot, recipients=1)
        await pilot.press("ctrl+p")
        await type_text(pilot, f"#{sent['id']}")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, NotificationDetailScreen))
        assert isinstance(app.screen, NotificationDetailScreen) and app.screen.notification_id == sent["id"]


# -- the daemon away --------------------------------------------------------------------------------

async def test_without_a_daemon_a_banner_says_so_and_the_app_recovers_when_it_starts_and_stops(
    short_tmp: Path,
) -> None:
    config = make_config(short_tmp)
    seen: list[type[Message]] = []
    app = make_app(config.daemon.socket_path)

    def record(message: Message) -> None:  # the app forwards each one to the screens: count transitions
        if isinstance(message, Connected | Disconnected) and (not seen or seen[-1] is not type(message)):
            seen.append(type(message))

    async with app.run_test(size=SIZE, message_hook=record) as pilot:
        banner = home(app).query_one(ConnectionBanner)
        await wait_for(pilot, lambda: banner.display)
        text = rendered(banner)
        assert f"daemon not reachable at {config.daemon.socket_path} — retrying" in text
        assert "no such socket" in text
        await pilot.press("s")  # the app keeps working: the form opens, and says why nothing is listed
        await pilot.press("escape")

        daemon = await start_daemon(config)
        try:
            await add_recipient(daemon, name="Zed")
            await wait_for(pilot, lambda: not banner.display and home(app).loaded and len(app.recipients) == 1)
        finally:
            await stop_daemon(daemon)
        await wait_for(pilot, lambda: banner.display)
    assert seen[:3] == [Disconnected, Connected, Disconnected]
