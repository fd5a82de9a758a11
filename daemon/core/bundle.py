"""Bundling an alert storm (``[bundle] window``): which notifications wait to go out together, and the
one message they become. Pure logic, no I/O, no clock of its own.

The rules, like Alertmanager's ``group_wait``:

* with bundling on (``window`` > 0), a notification below ``high`` priority that is about to be sent
  (``failover.before_attempt`` said ``Send``) opens a window for its recipient and its current channel,
  or joins the one open; it keeps its claim and waits;
* when the window closes, every member is looked at again (cancelled meanwhile, paused, opted out,
  quiet hours, deadline, breaker: each member's own rules still hold), and those still to be sent on
  that channel go out as one message: "N notifications:" then each text, newest first, cut to the
  channel's limit with a note of how many were cut. A window left with one member sends it as it is;
* never bundled, never delayed: ``high`` and ``critical``; a notification waiting for a "Got it"
  (``ack_timeout``: the button acknowledges one notification, so it goes alone); an SMS while delivery
  receipts are on (a receipt closes one attempt); and one whose deadline falls inside the window (it
  would otherwise expire waiting for company);
* every member gets its own attempt: the same provider message id and outcome, and a note naming the
  bundle ("delivered in bundle of 3 (lead #12)"). A failure fails each member's attempt the usual way,
  so each then follows its own chain; a retry comes due again, and bundles again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from daemon.core.failover import Plan, Send
from daemon.core.models import Channel, Outcome, Priority
from daemon.core.sms_segments import sms_segments

TELEGRAM_LIMIT = 4096
"""Telegram's message limit in UTF-16 code units (``daemon.channels.telegram_text``, a layer above)."""
EMAIL_LIMIT = 65_536
"""The longest email body a bundle makes (the API's own limit on one text): mail has no hard limit."""
ELLIPSIS = "…"


@dataclass(frozen=True, slots=True)
class BundlePolicy:
    window: float = 0.0  # seconds; 0: off
    sms_max_segments: int = 10  # ``[sms] max_segments``: the longest SMS a bundle may become

    @property
    def on(self) -> bool:
        return self.window > 0


def joins(policy: BundlePolicy, send: Send, priority: Priority, deadline: datetime | None, now: datetime,
          sms_receipts: bool) -> bool:
    """Does a notification that ``before_attempt`` said to send wait in its recipient's window instead?"""
    if not policy.on or priority.rank >= Priority.HIGH.rank or send.ack_requested:
        return False
    if send.channel is Channel.SMS and sms_receipts:
        return False
    return deadline is None or deadline > now + timedelta(seconds=policy.window)


@dataclass(slots=True)
class Window:
    """An open window: the notifications (by id) of one recipient waiting to go out on one channel."""

    recipient_id: int
    channel: Channel
    closes_at: datetime
    members: list[int] = field(default_factory=list)


class Windows:
    """The engine's open windows, by recipient and channel (in memory: the members' claims are on disk,
    so a crash releases them like any claim and they come due again)."""

    def __init__(self) -> None:
        self._open: dict[tuple[int, Channel], Window] = {}

    def join(self, recipient_id: int, channel: Channel, notification_id: int, now: datetime,
             seconds: float) -> Window:
        """Add the notification to the window open for this recipient and channel, or open one."""
        key = (recipient_id, channel)
        window = self._open.get(key)
        if window is None:
            window = self._open[key] = Window(recipient_id, channel, now + timedelta(seconds=seconds))
        window.members.append(notification_id)
        return window

    def close_due(self, now: datetime) -> list[Window]:
        """Take out the windows that have closed by ``now``."""
        due = [key for key, window in self._open.items() if window.closes_at <= now]
        return [self._open.pop(key) for key in due]

    def next_close(self) -> datetime | None:
        return min((w.closes_at for w in self._open.values()), default=None)

    def held(self) -> set[int]:
        """Every notification waiting in a window (their leases are renewed like those of attempts)."""
        return {nid for window in self._open.values() for nid in window.members}

    def drain(self) -> list[int]:
        """Close every window without sending (the engine stops): the members to release."""
        ids = sorted(self.held())
        self._open.clear()
        return ids


@dataclass(frozen=True, slots=True)
class Composed:
    text: str
    subject: str | None
    shown: int  # how many texts are in the message (the newest ones)
    cut: int  # how many were left out for length


def header(count: int) -> str:
    return f"{count} notifications:"


def cut_note(count: int) -> str:
    return f"… and {count} more, cut for length"


def fits_for(channel: Channel, sms_max_segments: int) -> Callable[[str], bool]:
    """The channel's limit on one message, as a test of a candidate text."""
    if channel is Channel.TELEGRAM:
        return lambda text: len(text.encode("utf-16-le")) // 2 <= TELEGRAM_LIMIT
    if channel is Channel.SMS:
        return lambda text: sms_segments(text) <= sms_max_segments
    return lambda text: len(text) <= EMAIL_LIMIT


def compose(texts: Sequence[str], fits: Callable[[str], bool]) -> Composed:
    """One message from ``texts`` (newest first): "N notifications:", then each text after a blank
    line, as many as ``fits`` lets in whole, then a note of how many were cut. The newest text is
    always there, shortened with "…" if even it alone is too long. One text is sent as it is."""
    count = len(texts)
    if count == 1:
        return Composed(texts[0], None, 1, 0)
    subject = header(count).removesuffix(":")

    def render(shown: Sequence[str], cut: int) -> str:
        return "\n\n".join([header(count), *shown, *([cut_note(cut)] if cut else [])])

    shown = 0
    while shown < count and fits(render(texts[: shown + 1], count - shown - 1)):
        shown += 1
    if shown == 0:  # the newest text alone is too long: keep as much of it as fits
        first = _shorten(texts[0], lambda head: fits(render([head], count - 1)))
        return Composed(render([first], count - 1), subject, 1, count - 1)
    return Composed(render(texts[:shown], count - shown), subject, shown, count - shown)


def _shorten(text: str, fits: Callable[[str], bool]) -> str:
    """The longest start of ``text`` that, ending in "…", ``fits`` (binary search: fits is monotonic)."""
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if fits(text[:mid].rstrip() + ELLIPSIS):
            low = mid
        else:
            high = mid - 1
    return text[:low].rstrip() + ELLIPSIS


def note(size: int, lead: int, cut: bool) -> str:
    """What each member's attempt says about the bundle it went in."""
    text = f"bundle of {size} (lead #{lead})"
    return f"{text}; its text was cut for length" if cut else text


def noted(plan: Plan, size: int, lead: int, cut: bool) -> Plan:
    """``plan`` for one member of a bundle: its attempt's error (a note, when delivered) names the bundle."""
    about = note(size, lead, cut)
    error = plan.record.error
    if plan.record.outcome is Outcome.DELIVERED:
        error = f"delivered in {about}"
    else:
        error = f"{error}; in {about}" if error else f"in {about}"
    return replace(plan, record=replace(plan.record, error=error))
