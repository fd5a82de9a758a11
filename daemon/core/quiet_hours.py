"""Quiet hours: a daily window on the recipient's own wall clock, e.g. ``22:00-07:00`` in Europe/Moscow.

Pure functions, no clock of their own: ``quiet_until(window, timezone, now)`` says whether ``now``
falls inside the window and, if so, the instant it ends. The window is read on the local wall clock
(``zoneinfo``), so daylight-saving changes move it with the clocks:

* a window may cross midnight (``22:00-07:00``); ``start == end`` is refused (always or never?);
* an end that falls on the hour the clocks skip (spring forward) ends the window at the moment the
  clocks jump past it, not an hour later;
* an end that comes twice (autumn, the repeated hour) ends the window at its first occurrence, and a
  notification released then is not held again by the second: the end returned is always after ``now``
  and the window is not entered again until its start comes round once more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_WINDOW = re.compile(r"([0-2][0-9]):([0-5][0-9])-([0-2][0-9]):([0-5][0-9])")
_GAP_SEARCH_STEPS = 40  # bisecting at most a few hours to the second takes ~15; bounded regardless


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: time
    end: time

    @property
    def crosses_midnight(self) -> bool:
        return self.start > self.end

    def contains(self, wall: time) -> bool:
        """Is the local wall-clock time ``wall`` inside the window (start included, end excluded)?"""
        if self.crosses_midnight:
            return wall >= self.start or wall < self.end
        return self.start <= wall < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse_window(text: str) -> QuietHours:
    """``"22:00-07:00"`` as a ``QuietHours``; ValueError saying what is wrong otherwise."""
    match = _WINDOW.fullmatch(text.strip().replace(" ", ""))
    if match is None:
        raise ValueError(f"{text!r} is not a window like 22:00-07:00 (HH:MM-HH:MM, 24-hour)")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 23:
        raise ValueError(f"{text!r}: hours run 00..23")
    window = QuietHours(time(h1, m1), time(h2, m2))
    if window.start == window.end:
        raise ValueError(f"{text!r}: start and end are the same; to turn quiet hours off, unset them")
    return window


def parse_timezone(name: str) -> ZoneInfo:
    """An IANA zone (``Europe/Moscow``, ``UTC``); ValueError when zoneinfo does not know it."""
    if not name or name != name.strip() or ".." in name or name.startswith("/"):
        raise ValueError(f"{name!r} is not an IANA time zone name, e.g. Europe/Moscow")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name, e.g. Europe/Moscow or UTC)") from None


def quiet_until(window: QuietHours | None, zone: ZoneInfo, now: datetime) -> datetime | None:
    """The instant (UTC) the quiet window holding ``now`` ends, or None when ``now`` is not in one."""
    if window is None:
        return None
    local = now.astimezone(zone)
    if not window.contains(local.time().replace(tzinfo=None)):
        return None
    # the window that holds ``now`` ends today, or tomorrow when it crossed midnight and we are before it
    end_day = local.date()
    if window.crosses_midnight and local.time().replace(tzinfo=None) >= window.start:
        end_day += timedelta(days=1)
    for day in (end_day, end_day + timedelta(days=1)):
        end = _first_instant_at(day, window.end, zone, after=now)
        if end is not None:
            return end
    return None  # unreachable in practice: a later end always exists


def _first_instant_at(day: date, wall: time, zone: ZoneInfo, *, after: datetime) -> datetime | None:
    """The first instant after ``after`` at which the wall clock in ``zone`` reads ``wall`` on ``day``
    (or has just jumped past it, when the clocks skip it), in UTC."""
    naive = datetime.combine(day, wall)
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) != naive:
        # a wall time the clocks skip: the end is the jump itself, between the two readings
        first = _jump_between(min(first, second), max(first, second), naive, zone)
        second = first
    for candidate in sorted({first, second}):  # the repeated hour: its first reading wins
        if candidate > after:
            return candidate
    return None


def _jump_between(lo: datetime, hi: datetime, naive: datetime, zone: ZoneInfo) -> datetime:
    """Bisect ``(lo, hi]``, in whole seconds, for the first instant whose wall clock reads ``naive`` or later."""
    low, high = int(lo.timestamp()), int(hi.timestamp())
    for _ in range(_GAP_SEARCH_STEPS):
        if high - low <= 1:
            break
        mid = (low + high) // 2
        if datetime.fromtimestamp(mid, zone).replace(tzinfo=None) >= naive:
            high = mid
        else:
            low = mid
    return datetime.fromtimestamp(high, UTC)


def describe_hold(until: datetime, zone_name: str, zone: ZoneInfo) -> str:
    """The ``skipped`` entry of a held notification: "quiet hours until 07:00 Europe/Moscow"."""
    return f"quiet hours until {until.astimezone(zone):%H:%M} {zone_name}"
