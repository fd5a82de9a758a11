"""Channel health: per channel over the last hour, delivered / retry / failed / skipped and a
one-word verdict, so "SMTP is down" reads at a glance; plus the daemon's queue."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, Static

from daemon.client import DaemonUnavailable, RemoteError
from daemon.protocol import Outcome
from tui.base import fnotify_app
from tui.connection import Connected, DaemonEvent
from tui.formatting import verdict_text
from tui.model import CHANNELS, STATUSES, channel_verdict
from tui.widgets.banner import ConnectionBanner

REFRESH_AFTER_EVENT = 1.0  # at most one re-read per second while attempts stream in
REFRESH_EVERY = 30.0  # the one-hour window moves on even when nothing happens
SHOWN_OUTCOMES = (Outcome.DELIVERED, Outcome.RETRY, Outcome.FAILED, Outcome.SKIPPED)


def health_table(health: dict[str, Any]) -> Table:
    table = Table(expand=True, box=None, header_style="bold bright_black", pad_edge=False)
    table.add_column("channel", style="bold", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    for outcome, style in zip(SHOWN_OUTCOMES, ("green", "yellow", "red", ""), strict=True):
        table.add_column(outcome, justify="right", style=style, no_wrap=True)
    for channel in CHANNELS:
        counts = health.get(channel) or {}
        verdict = channel_verdict(counts)
        table.add_row(channel, verdict_text(verdict),
                      *(str(counts.get(k) or 0) for k in SHOWN_OUTCOMES))
    return table


def daemon_summary(status: dict[str, Any]) -> RenderableType:
    counts = status.get("counts") or {}
    by_status = " · ".join(f"{s} {counts[s]}" for s in STATUSES if counts.get(s)) or "no notifications yet"
    return Group(
        Text.assemble(("daemon ", "bright_black"), str(status.get("version", "?")),
                      ("   queue depth ", "bright_black"), str(status.get("queue_depth", 0)),
                      ("   in flight ", "bright_black"), str(status.get("in_flight", 0)),
                      ("   PAUSED: sends are stored, nothing is delivered", "bold yellow")
                      if status.get("paused") else ""),
        Text.assemble(("all time: ", "bright_black"), by_status),
    )


class HealthScreen(Screen[None]):
    SUB_TITLE = "channel health, last hour"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", key_display="esc"),
        Binding("g", "refresh", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._pending: Timer | None = None
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionBanner()
        yield Static("loading…", id="health-table")
        yield Static(id="daemon-status")
        yield Static(Text("verdict: ok = delivering · degraded = delivering with retries or failures · "
                          "failing = nothing delivered, only retries or failures · idle = no attempts",
                          style="bright_black"), id="health-legend")
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(REFRESH_EVERY, self.load)
        self.load()

    def on_connected(self, message: Connected) -> None:
        self.load()

    def on_daemon_event(self, message: DaemonEvent) -> None:
        if message.kind in ("attempt.finished", "daemon.paused") and self._pending is None:
            self._pending = self.set_timer(REFRESH_AFTER_EVENT, self.load)

    def action_refresh(self) -> None:
        self.load()

    @work(exclusive=True, group="health")
    async def load(self) -> None:
        self._pending = None
        app = fnotify_app(self)
        try:
            health = await app.call("health")
            status = await app.call("status")
        except (DaemonUnavailable, RemoteError):
            return
        self.query_one("#health-table", Static).update(health_table(health))
        self.query_one("#daemon-status", Static).update(daemon_summary(status))
        self.loaded = True

