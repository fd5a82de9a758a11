"""A notification's attempts as a timeline: one row per attempt, a marker where it fails over."""

from __future__ import annotations

from datetime import tzinfo

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from daemon.protocol import AttemptJSON, Outcome
from tui.formatting import OUTCOME_STYLES, duration, outcome_text, precise_time, retry_wait, seconds, shown
from tui.model import Notification, is_final


def attempt_detail(attempt: AttemptJSON, tz: tzinfo | None) -> Text:
    """The error (or the provider's message id), then when the same channel is tried again."""
    text = Text()
    if attempt.get("error"):
        text.append(shown(attempt["error"]))  # a provider's error may quote the message or address
    elif attempt.get("provider_message_id"):
        text.append(f"id {shown(attempt['provider_message_id'])}", style="bright_black")
    wait = retry_wait(attempt)
    if wait is not None:
        if text:
            text.append(" · ")
        at = precise_time(attempt.get("retry_at"), tz)
        text.append(f"retry in {seconds(wait)} (at {at})", style="yellow")
    return text


WIDE = 110  # from this width on, the detail sits in its own column instead of under the attempt


def _took(attempt: AttemptJSON) -> str:
    if attempt.get("outcome") is None:
        return "…"
    return "" if attempt.get("outcome") == Outcome.SKIPPED else duration(attempt.get("duration_ms"))


def _attempt_cells(number: int, attempt: AttemptJSON, tz: tzinfo | None) -> list[RenderableType]:
    _, style = OUTCOME_STYLES.get(attempt.get("outcome") or "", ("", "bold cyan"))
    return [
        Text(str(number), style=style),
        precise_time(attempt.get("started_at") or attempt.get("finished_at"), tz),
        Text(str(attempt.get("channel") or "?"), style="bold"),
        outcome_text(attempt.get("outcome")),
        _took(attempt),
    ]


def _attempt_line(number: int, attempt: AttemptJSON, tz: tzinfo | None) -> Text:
    _, style = OUTCOME_STYLES.get(attempt.get("outcome") or "", ("", "bold cyan"))
    outcome = outcome_text(attempt.get("outcome"))
    started = precise_time(attempt.get("started_at") or attempt.get("finished_at"), tz)
    return Text.assemble(
        (f"{number:>2}", style), f"  {started:<12}  ", (f"{attempt.get('channel') or '?':<10}", "bold"),
        (f"{outcome.plain:<16}", str(outcome.style)), f"{_took(attempt):>7}",
    )


def _narrow(attempts: list[AttemptJSON], tz: tzinfo | None) -> list[RenderableType]:
    """Each attempt on one line, its detail indented on the lines below."""
    header = f"{'#':>2}  {'started':<12}  {'channel':<10}{'outcome':<16}{'took':>7}"
    lines: list[RenderableType] = [Text(header, style="bold bright_black")]
    previous: str | None = None
    for number, attempt in enumerate(attempts, 1):
        channel = str(attempt.get("channel") or "?")
        if previous is not None and channel != previous:
            lines.append(Text(f"    ↳ fail over to {channel}", style="bright_black italic"))
        previous = channel
        lines.append(_attempt_line(number, attempt, tz))
        detail = attempt_detail(attempt, tz)
        if detail:
            lines.append(Padding(detail, (0, 0, 0, 4)))
    return lines


def _wide(attempts: list[AttemptJSON], tz: tzinfo | None) -> Table:
    table = Table(box=None, expand=True, pad_edge=False, header_style="bold bright_black", show_edge=False)
    for name, justify in (("#", "right"), ("started", "left"), ("channel", "left"), ("outcome", "left"),
                          ("took", "right")):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    table.add_column("detail", ratio=1, overflow="fold")
    previous: str | None = None
    for number, attempt in enumerate(attempts, 1):
        channel = str(attempt.get("channel") or "?")
        if previous is not None and channel != previous:
            table.add_row("", "", Text(f"↳ {channel}", style="bright_black italic"),
                          Text("fail over", style="bright_black italic"), "", "")
        previous = channel
        table.add_row(*_attempt_cells(number, attempt, tz), attempt_detail(attempt, tz))
    return table


def timeline(notification: Notification, tz: tzinfo | None, width: int = 80) -> RenderableType:
    """Attempts in order with a "fail over" marker between channels; narrow terminals get each
    attempt's detail on the lines below it, wide ones in a column."""
    attempts: list[AttemptJSON] = notification.get("attempts") or []
    if not attempts:
        waiting = "no attempts yet" if not is_final(notification) else "no attempts were made"
        return Text(waiting, style="bright_black italic")
    parts: list[RenderableType] = [_wide(attempts, tz)] if width >= WIDE else _narrow(attempts, tz)
    if not is_final(notification) and notification.get("next_attempt_at"):
        parts.append(Text(f"\nnext attempt at {precise_time(notification['next_attempt_at'], tz)}",
                          style="yellow"))
    return Group(*parts)


class AttemptTimeline(Static):
    """Re-rendered from the notification dict whenever a stream event changes it."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: tuple[Notification, tzinfo | None] | None = None

    def show(self, notification: Notification, tz: tzinfo | None) -> None:
        self._shown = (notification, tz)
        self.update(timeline(notification, tz, self.app.size.width))

    def on_resize(self) -> None:
        if self._shown is not None:
            self.update(timeline(*self._shown, self.app.size.width))
