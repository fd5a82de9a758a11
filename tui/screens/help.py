"""Keys and screens at a glance (? or F1 from anywhere)."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.base import fnotify_app

SECTIONS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("Anywhere", (
        ("ctrl+p", "command palette: every action, 'Show only failed', type a number to open #N"),
        ("? / F1", "this help"),
        ("esc", "back / close"),
        ("ctrl+q", "quit"),
    )),
    ("Notifications (home)", (
        ("↑ ↓  enter", "move, open the detail"),
        ("s", "send a notification"),
        ("/", "search the text; enter returns to the table"),
        ("f", "cycle the status filter (or pick one in the bar)"),
        ("esc", "clear every filter"),
        ("n / p", "older / newer page (the newest page is live)"),
        ("c", "cancel the selected notification"),
        ("r / h", "recipients / channel health"),
    )),
    ("Detail", (
        ("c", "cancel (while not final)"),
        ("r", "resend: a new notification with the same text"),
        ("R", "redrive a failed one along its chain again"),
    )),
    ("Send form", (
        ("type, ↓", "search recipients, pick one"),
        ("tab", "next field"),
        ("←/→ space ⇧←/⇧→", "chain: pick, on/off, move earlier/later"),
        ("ctrl+s", "send; the new notification opens"),
    )),
    ("Recipients", (
        ("a / enter", "add / edit"),
        ("l", "Telegram opt-in link (URL and QR code)"),
        ("s", "send to the selected recipient"),
        ("x", "remove"),
    )),
)


def help_text(socket_path: str) -> RenderableType:
    parts: list[RenderableType] = [Text(f"daemon socket: {socket_path}\n", style="bright_black")]
    for title, keys in SECTIONS:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True, min_width=16)
        table.add_column()
        for key, what in keys:
            table.add_row(key, what)
        parts += [Text(title, style="bold underline"), table, Text("")]
    return Group(*parts)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1", "app.pop_screen", "Close", key_display="esc"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="help-dialog") as scroll:
            scroll.border_title = "failover-notify · help"
            yield Static(help_text(str(fnotify_app(self).socket_path)))
