"""Caps on what SMS may cost: per-recipient sliding windows and a cluster-wide daily budget.

Pure logic, no I/O, no clock: the engine reads the usage from the store (so every daemon sharing a
PostgreSQL database counts the same sends) and ``daemon.core.failover`` asks ``refusal`` before an
SMS is sent. What is counted:

* ``recipient_limits`` ("5/15m", "11/1h", "21/3h": GoAlert's defaults) count *messages* sent to one
  recipient in the last window (sliding, not calendar-aligned);
* ``daily_budget`` counts *segments* (what the provider bills) sent by every daemon since 00:00 UTC.

A send is counted once the provider has accepted it, whatever the carrier later reports: it is paid for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta

DEFAULT_RECIPIENT_LIMITS = ("5/15m", "11/1h", "21/3h")
BUDGET_WARN_FRACTION = 0.8
"""The share of the daily budget at which a warning event and log line are given (once per day)."""

_LIMIT = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*([smhd])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


@dataclass(frozen=True, slots=True)
class RecipientLimit:
    """At most ``count`` messages to one recipient in any ``window`` seconds; ``text`` as configured."""

    count: int
    window: float
    text: str


def parse_limit(text: str) -> RecipientLimit:
    """``"5/15m"`` -> 5 messages per 15 minutes; raises ValueError naming the form expected."""
    match = _LIMIT.match(text)
    if match is None:
        raise ValueError(f"{text!r}: expected COUNT/WINDOW, e.g. \"5/15m\" (units s, m, h, d)")
    count, amount, unit = int(match[1]), int(match[2]), match[3]
    if count < 1 or amount < 1:
        raise ValueError(f"{text!r}: the count and the window must be at least 1")
    return RecipientLimit(count, float(amount * _UNIT[unit]), f"{count}/{amount}{unit}")


@dataclass(frozen=True, slots=True)
class SmsCaps:
    limits: tuple[RecipientLimit, ...] = ()
    daily_budget: int | None = None  # segments per UTC day, None: no budget

    @classmethod
    def parse(cls, limits: list[str] | tuple[str, ...], daily_budget: int | None) -> SmsCaps:
        return cls(tuple(parse_limit(text) for text in limits), daily_budget)

    @property
    def active(self) -> bool:
        return bool(self.limits) or self.daily_budget is not None

    @property
    def longest_window(self) -> float:
        return max((limit.window for limit in self.limits), default=0.0)


@dataclass(frozen=True, slots=True)
class SmsUsage:
    """What was sent, as the store counted it when the next SMS came up."""

    recipient_sends: tuple[datetime, ...]  # accepted SMS to this recipient within the longest window
    segments_today: int  # segments accepted by every daemon since 00:00 UTC


def day_start(now: datetime) -> datetime:
    """00:00 UTC of ``now``'s day: the daily budget's reset."""
    return datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)


def usage_since(caps: SmsCaps, now: datetime) -> datetime:
    """How far back the store must look for ``refusal`` to see everything it needs."""
    return min(now - timedelta(seconds=caps.longest_window), day_start(now))


def refusal(caps: SmsCaps, usage: SmsUsage, now: datetime, segments: int) -> str | None:
    """Why this SMS (``segments`` long) may not be sent now (the skip reason), or None."""
    for limit in caps.limits:
        since = now - timedelta(seconds=limit.window)
        if sum(1 for at in usage.recipient_sends if at > since) >= limit.count:
            return f"SMS limit {limit.text} reached for this recipient"
    if caps.daily_budget is not None and usage.segments_today + segments > caps.daily_budget:
        return f"SMS daily budget {caps.daily_budget} used up"
    return None


def crossed_warning(caps: SmsCaps, before: int, after: int) -> bool:
    """Did the segments used today go from below to at or over the warning share of the budget?"""
    if caps.daily_budget is None:
        return False
    mark = caps.daily_budget * BUDGET_WARN_FRACTION
    return before < mark <= after


@dataclass(frozen=True, slots=True)
class SmsPolicy:
    """The engine's SMS settings: how long to wait for a delivery receipt (None: receipts off) and the caps."""

    receipt_timeout: float | None = None
    caps: SmsCaps = SmsCaps()
