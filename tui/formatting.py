"""How values read on screen: status colours, times, durations, truncated text.

Pure functions returning strings or Rich ``Text``; times are shown in ``tz`` (the local zone
unless the app was given one) relative to an injected ``now``, so snapshots do not depend on
the machine's clock or zone.

Names, messages, subjects and the daemon's errors quoting them come from API clients: they reach
the screen only through ``plain``/``shown`` (or ``first_line``), never as a markup string (a name
``Bob [/]`` raised MarkupError, ``[@click=app.quit]`` made a clickable action), and with control
characters written as escapes rather than handed to the terminal.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from rich.text import Text

from daemon.protocol import AttemptJSON, Outcome, Priority, Status, visible

STATUS_STYLES: dict[str, tuple[str, str]] = {  # status -> (icon, style)
    Status.QUEUED: ("·", "cyan"),
    Status.SENDING: ("⋯", "yellow"),
    Status.HELD: ("☾", "blue"),  # waiting out the recipient's quiet hours
    Status.DELIVERED: ("✓", "green"),
    Status.ACKNOWLEDGED: ("✓", "bold green"),
    Status.FAILED: ("✗", "bold red"),
    Status.CANCELLED: ("⊘", "bright_black"),
    Status.EXPIRED: ("⊗", "magenta"),
}
OUTCOME_STYLES: dict[str, tuple[str, str]] = {
    Outcome.DELIVERED: ("✓", "green"),
    Outcome.RETRY: ("↻", "yellow"),
    Outcome.FAILED: ("✗", "red"),
    Outcome.SKIPPED: ("–", "bright_black"),
    Outcome.INTERRUPTED: ("!", "magenta"),
    Outcome.UNACKNOWLEDGED: ("?", "dark_orange"),
    Outcome.UNDELIVERED: ("↯", "red"),  # the carrier dropped it after the provider took it
}
IN_FLIGHT = ("⋯", "bold cyan")
TELEGRAM_STATE_STYLES = {"linked": "green", "not linked": "bright_black", "opted out": "yellow",
                         "blocked": "bold red"}
VERDICT_STYLES = {"disabled": "bright_black", "idle": "bright_black", "ok": "bold green",
                  "degraded": "bold yellow", "failing": "bold white on red", "down": "bold white on red"}


def shown(value: object, *, keep_newlines: bool = False) -> str:
    """``value`` as a string for the screen: control and bidi characters written as escapes."""
    return visible(str(value), keep_newlines=keep_newlines)


def plain(value: object, style: str = "", *, keep_newlines: bool = False) -> Text:
    """``value`` as ``Text`` (never parsed as markup), control and bidi characters as escapes."""
    return Text(shown(value, keep_newlines=keep_newlines), style=style)


PRIORITY_STYLES: dict[str, tuple[str, str]] = {  # priority -> (4-cell label, style); normal stays quiet
    Priority.LOW: ("low", "bright_black"),
    Priority.NORMAL: ("-", "bright_black"),
    Priority.HIGH: ("high", "yellow"),
    Priority.CRITICAL: ("crit", "bold red"),
}


def priority_text(priority: str | None) -> Text:
    label, style = PRIORITY_STYLES.get(priority or Priority.NORMAL, (priority or "-", ""))
    return Text(label, style=style)


def status_text(status: str | None) -> Text:
    icon, style = STATUS_STYLES.get(status or "", ("?", ""))
    return Text(f"{icon} {status or 'unknown'}", style=style)


def outcome_text(outcome: str | None) -> Text:
    """An attempt's outcome; ``None`` means the attempt is still in flight."""
    if outcome is None:
        icon, style = IN_FLIGHT
        return Text(f"{icon} sending", style=style)
    icon, style = OUTCOME_STYLES.get(outcome, ("?", ""))
    return Text(f"{icon} {outcome}", style=style)


def telegram_state_text(state: str | None) -> Text:
    return Text(state or "-", style=TELEGRAM_STATE_STYLES.get(state or "", ""))


def verdict_text(verdict: str) -> Text:
    return Text(f" {verdict} ", style=VERDICT_STYLES.get(verdict, ""))


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def short_time(value: str | None, tz: tzinfo | None, now: datetime) -> str:
    """``14:03:22`` today, ``11-24 14:03`` on another day, ``-`` when unknown."""
    when = parse_time(value)
    if when is None:
        return "-"
    local, today = when.astimezone(tz), now.astimezone(tz)
    return local.strftime("%H:%M:%S") if local.date() == today.date() else local.strftime("%m-%d %H:%M")


def full_time(value: str | None, tz: tzinfo | None) -> str:
    when = parse_time(value)
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S") if when else "-"


def precise_time(value: str | None, tz: tzinfo | None) -> str:
    """``14:03:22.120``: attempts of one failover are milliseconds apart."""
    when = parse_time(value)
    return when.astimezone(tz).strftime("%H:%M:%S.%f")[:-3] if when else "-"


def duration(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.0f} min"


def retry_wait(attempt: AttemptJSON) -> float | None:
    """Seconds the engine waits before trying the same channel again, for a ``retry`` outcome."""
    retry_at, finished = parse_time(attempt.get("retry_at")), parse_time(attempt.get("finished_at"))
    if retry_at is None or finished is None:
        return None
    return max(0.0, (retry_at - finished).total_seconds())


def first_line(text: str | None, width: int) -> str:
    """The first non-empty line, ``shown`` and cut to ``width`` cells with an ellipsis."""
    line = shown(next((part.strip() for part in (text or "").splitlines() if part.strip()), ""))
    if width <= 1:
        return line[:max(width, 0)]
    return line if len(line) <= width else line[: width - 1] + "…"


def chain_text(chain: list[str] | None, current: str | None = None) -> Text:
    """``telegram → email → sms`` with the channel in use highlighted."""
    text = Text()
    for i, channel in enumerate(chain or []):
        if i:
            text.append(" → ", style="bright_black")
        text.append(channel, style="bold reverse" if channel == current else "")
    return text
