"""Hostile names and messages on every TUI screen: shown as text, never read as markup or sent raw.

A recipient named ``Bob [/]`` crashed the app with MarkupError on the remove dialog, and
``[@click=app.quit]`` in a name made a clickable action; ESC/OSC/C1/bidi characters in a message
reached the terminal. Pilot drives the app against a real daemon on a Unix socket, and each
screen's rendered cells are read back.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC
from io import StringIO
from typing import Any

from rich.console import Console
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Input, Select

from tests.conftest import RunningDaemon
from tests.test_tui import ready, wait_for
from tui.app import FnotifyApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.detail import NotificationDetailScreen
from tui.screens.health import HealthScreen
from tui.screens.link import LinkScreen
from tui.screens.recipient_edit import RecipientEditScreen
from tui.screens.recipients import RecipientsScreen
from tui.screens.send import SendScreen
from tui.widgets.attempt_timeline import timeline

SIZE = (130, 40)
NAME = "Bob [/] [@click=app.quit]win[/] [b]\x1b]0;pwned\x07 \u202eevil"
SHOWN_NAME = "Bob [/] [@click=app.quit]win[/] [b]\\x1b]0;pwned\\x07 \\u202eevil"
MESSAGE = "[/][@click=app.quit]boom[/] \x1b[2J\rDELIVERED\x9b31m\nline two [red]\x1b]52;c;cHduZWQ=\x07"
SHOWN_FIRST_LINE = "[/][@click=app.quit]boom[/] \\x1b[2J\\rDELIVERED\\x9b31m"
SUBJECT = "[bold]subj[/bold] [/] \x1b[31m\u202e"
SHOWN_SUBJECT = "[bold]subj[/bold] [/] \\x1b[31m\\u202e"
BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def screen_text(app: App[Any]) -> str:
    """Every cell the current screen (toasts included) would write, as plain text. Textual has no
    public reader for this; snapshots use the same compositor."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def raw_controls(text: str) -> list[str]:
    return [ch for ch in text if (unicodedata.category(ch) == "Cc" and ch != "\n") or ch in BIDI]


async def shows(pilot: Pilot[None], *pieces: str) -> str:
    """Wait until the screen shows every piece; it must never show a raw control character."""
    try:
        await wait_for(pilot, lambda: all(p in screen_text(pilot.app) for p in pieces), timeout=5.0)
    except TimeoutError:
        text = screen_text(pilot.app)
        raise AssertionError(f"not shown: {[p for p in pieces if p not in text]}\n{text}") from None
    text = screen_text(pilot.app)
    assert raw_controls(text) == [], text
    return text


async def hostile_data(daemon: RunningDaemon) -> tuple[int, int]:
    bob = await daemon.call("recipient.add", name=NAME, email="bob@example.com")
    sent = await daemon.call("send", recipient_id=bob["id"], message=MESSAGE, subject=SUBJECT, chain="email")
    await daemon.wait_final(sent["id"])
    return int(bob["id"]), int(sent["id"])


async def test_hostile_names_and_messages_show_as_text_on_every_screen(bare_daemon: RunningDaemon) -> None:
    bob, sent = await hostile_data(bare_daemon)
    app = FnotifyApp(bare_daemon.config.daemon.socket_path, tz=UTC, retry_initial=0.05, retry_max=0.2)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot, recipients=1)
        # home: the table (name and first line) and the recipient filter
        await shows(pilot, "Bob [/] [@click", "[/][@click=app.quit]boom[/] \\x1b[2J")  # a CR ends the line
        app.screen.query_one("#recipient-filter", Select).value = bob
        await wait_for(pilot, lambda: screen_text(app).count("Bob [/]") == 2)  # the table and the filter

        # detail: summary (name, subject), message, attempt timeline
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, NotificationDetailScreen)
                       and app.screen.notification is not None and app.screen.notification_id == sent)
        text = await shows(pilot, SHOWN_NAME, SHOWN_SUBJECT, SHOWN_FIRST_LINE, "channel disabled")
        assert "line two [red]\\x1b]52;c;cHduZWQ=\\x07" in text
        await pilot.press("c")  # a final notification: the toast names its status
        await pilot.press("escape")

        # recipients: the table, the edit form, the opt-in link dialog, the send form
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, RecipientsScreen))
        await shows(pilot, SHOWN_NAME)
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, RecipientEditScreen))
        await shows(pilot, f"Edit {SHOWN_NAME} (#{bob})")
        assert app.screen.query_one("#name", Input).value == SHOWN_NAME
        await pilot.press("ctrl+s")  # the escaped name, untouched, is not saved over the real one
        await wait_for(pilot, lambda: isinstance(app.screen, RecipientsScreen))
        assert (await bare_daemon.call("recipient.list"))[0]["name"] == NAME
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LinkScreen))
        await shows(pilot, "Telegram opt-in link for Bob [/] [@click=app.quit]win[/]", "\\x07 \\u202eevil")
        await pilot.press("escape")
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, SendScreen))
        await shows(pilot, f"→ {SHOWN_NAME} reachable by email", f"{SHOWN_NAME}  #{bob}")
        await pilot.press("escape")

        # remove: the question and the toast both quote the name
        await wait_for(pilot, lambda: isinstance(app.screen, RecipientsScreen))
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await shows(pilot, "Remove Bob [/] [@click=app.quit]win[/]", "\\u202eevil")
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, RecipientsScreen) and not app.recipients)
        await shows(pilot, "Bob [/] [@click=app.quit]", "removed")  # the toast: the table is empty

        await pilot.press("escape", "h")
        await wait_for(pilot, lambda: isinstance(app.screen, HealthScreen) and app.screen.loaded)
        await shows(pilot, "disabled")
    assert app.return_code in (None, 0)


async def test_a_hostile_name_saved_from_the_form_is_said_as_text(bare_daemon: RunningDaemon) -> None:
    app = FnotifyApp(bare_daemon.config.daemon.socket_path, tz=UTC, retry_initial=0.05, retry_max=0.2)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(pilot)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, RecipientsScreen))
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, RecipientEditScreen))
        app.screen.query_one("#name", Input).value = "Eve [/] [@click=app.quit]x[/]"
        await pilot.press("ctrl+s")
        await shows(pilot, "Eve [/] [@click=app.quit]x[/] added")


def test_an_attempt_error_quoting_hostile_text_is_shown_escaped() -> None:
    attempt = {"channel": "email", "outcome": "failed", "started_at": None, "finished_at": None,
               "duration_ms": 3.0, "error": f"SMTP 550 {MESSAGE}"}
    for width in (80, 130):
        console = Console(width=width, file=StringIO(), record=True)
        console.print(timeline({"status": "failed", "attempts": [attempt]}, UTC, width))
        text = console.export_text()
        assert raw_controls(text) == [] and "\\x1b[2J\\rDELIVERED\\x9b31m" in text.replace("\n", "")
