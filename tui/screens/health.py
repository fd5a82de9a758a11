"""Channel health: per channel over the last hour, delivered / retry / failed / skipped, a one-word
verdict, the breaker and p50 / p95 call latency, so "SMTP is down" reads at a glance; under it two
sparklines per channel, attempts per minute (delivered, and failed or retried); plus the daemon's queue
and the SMS caps in force with today's budget use."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, Sparkline, Static

from daemon.client import DaemonUnavailable, RemoteError
from daemon.protocol import Outcome
from daemon.protocol.text import sms_summary
from tui.base import fnotify_app
from tui.connection import Connected, DaemonEvent
from tui.formatting import verdict_text
from tui.model import CHANNELS, STATUSES, channel_verdict
from tui.widgets.banner import ConnectionBanner

REFRESH_AFTER_EVENT = 1.0  # at most one re-read per second while attempts stream in
REFRESH_EVERY = 30.0  # the one-hour window moves on even when nothing happens
SHOWN_OUTCOMES = (Outcome.DELIVERED, Outcome.RETRY, Outcome.FAILED, Outcome.SKIPPED)


SPARKLINES = ("delivered", "trouble")  # trouble: failed or retried in that minute (colours: app.tcss)


def health_table(health: dict[str, Any]) -> Table:
    # one space between columns: nine of them fit 80 columns with room to spare
    table = Table(expand=True, box=None, header_style="bold bright_black", pad_edge=False, padding=(0, 1, 0, 0))
    table.add_column("channel", style="bold", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("breaker", no_wrap=True)
    for outcome, style in zip(SHOWN_OUTCOMES, ("green", "yellow", "red", ""), strict=True):
        table.add_column(outcome, justify="right", style=style, no_wrap=True)
    table.add_column("p50", justify="right", no_wrap=True)
    table.add_column("p95", justify="right", no_wrap=True)
    for channel in CHANNELS:
        counts = health.get(channel) or {}
        verdict = channel_verdict(counts)
        latency = counts.get("latency_ms") or {}
        table.add_row(channel, verdict_text(verdict), breaker_text(counts.get("breaker") or {}),
                      *(str(counts.get(k) or 0) for k in SHOWN_OUTCOMES),
                      milliseconds(latency.get("p50")), milliseconds(latency.get("p95")))
    return table


def breaker_text(breaker: dict[str, Any]) -> Text:
    state = breaker.get("state") or "?"
    if state == "open":
        probe = breaker.get("probe_in_s")
        return Text(f"open {probe:.0f}s" if isinstance(probe, int | float) else "open", style="bold red")
    return Text("half-open" if state == "half_open" else state,
                style="yellow" if state == "half_open" else "bright_black")


def milliseconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.1f} s"


def per_minute(channel_health: dict[str, Any]) -> dict[str, list[int]]:
    """The two sparklines' data from the ``health`` reply's series: delivered, and failed or retried."""
    series = channel_health.get("series") or {}
    delivered = list(series.get("delivered") or [])
    trouble = [r + f for r, f in zip(series.get("retry") or [], series.get("failed") or [], strict=False)]
    return {"delivered": delivered, "trouble": trouble}


def channel_sparklines(channel: str) -> ComposeResult:
    """Two rows: the channel's name, then per minute its delivered attempts and its failed or retried ones,
    each with the busiest minute's count at the right (each line is scaled to its own maximum)."""
    for row, kind in enumerate(SPARKLINES):
        with Horizontal(classes="spark-row"):
            yield Static(channel if row == 0 else "", classes="spark-label")
            yield Sparkline([], id=f"spark-{channel}-{kind}", classes=kind)
            yield Static("", id=f"peak-{channel}-{kind}", classes="spark-peak")


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
        *(sms_lines(status["sms"]) if status.get("sms") else ()),
    )


def sms_lines(sms: dict[str, Any]) -> tuple[Text, Text]:
    """Today's SMS budget use (UTC, every daemon together) and the receipts mode; the per-recipient caps.
    Two lines: on one they would wrap at 80 columns."""
    spent, caps, receipts = sms_summary(sms)
    budget, used = sms.get("daily_budget"), int(sms.get("budget_used_today") or 0)
    # the colours of the 80 % warning (the daemon's sms.budget event) and of a budget used up
    style = "" if not budget else "bold red" if used >= budget else "yellow" if used >= 0.8 * budget else ""
    return (Text.assemble(("sms: ", "bright_black"), (spent, style), (" · ", "bright_black"), receipts),
            Text.assemble(("sms ", "bright_black"), caps))


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
        with Vertical(id="health-sparklines"):
            yield Static(Text.assemble(("per minute, last hour, now at right: ", "bold"),
                                       ("delivered", "green"), " / ", ("failed or retried", "red")))
            for channel in CHANNELS:
                yield from channel_sparklines(channel)
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
        for channel in CHANNELS:
            for kind, counts in per_minute(health.get(channel) or {}).items():
                self.query_one(f"#spark-{channel}-{kind}", Sparkline).data = counts
                self.query_one(f"#peak-{channel}-{kind}", Static).update(f"max {max(counts, default=0)}")
        self.query_one("#daemon-status", Static).update(daemon_summary(status))
        self.loaded = True

