"""Log lines that cannot be forged or flooded: ``printable`` escapes control characters in a
string a client sent; ``LogThrottle`` turns an event that can come by the thousand into one line a
minute. Pure standard-library logging, so every layer may use them."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")  # tab is left alone: it starts no line
_ESCAPES = {"\n": "\\n", "\r": "\\r"}


def printable(value: object) -> str:
    """``str(value)`` with control characters escaped (``\\n``, ``\\x1b``, ``\\u2028``)."""
    return _CONTROL.sub(_escape, str(value))


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _ESCAPES.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")



# -- throttling ---------------------------------------------------------------------------------------

THROTTLE_INTERVAL = 60.0


@dataclass(slots=True)
class _Window:
    started: float
    level: int
    count: int = 0  # events counted, not logged, since ``started``


class LogThrottle:
    """The first event of a kind is logged in full; more of that kind within ``interval`` seconds are
    only counted, and the count is logged as one line when the interval ends (on the running event
    loop's timer, or with the next event of that kind, or by ``flush()``). A kind is its summary text."""

    def __init__(self, logger: logging.Logger, *, interval: float = THROTTLE_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._windows: dict[str, _Window] = {}
        self._timers: list[asyncio.TimerHandle] = []

    def log(self, level: int, summary: str, detail: str = "") -> bool:
        """Log ``summary`` + ``detail``, or count it; returns whether it was logged."""
        now = self.clock()
        window = self._windows.get(summary)
        if window is not None and now - window.started < self.interval:
            window.count += 1
            if window.count == 1:
                self._flush_later(window.started + self.interval - now)
            return False
        if window is not None and window.count:
            self._report(summary, window, now)
        self._windows[summary] = _Window(now, level)
        self.logger.log(level, "%s%s", summary, detail)
        return True

    def flush(self) -> None:
        """Log the count of every kind with events still unreported; a quiet kind is forgotten."""
        now = self.clock()
        for summary, window in list(self._windows.items()):
            if window.count:
                self._report(summary, window, now)
                self._windows[summary] = _Window(now, window.level)
            elif now - window.started >= self.interval:
                del self._windows[summary]

    def close(self) -> None:
        """Report what is pending and stop the timers."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self.flush()

    def _report(self, summary: str, window: _Window, now: float) -> None:
        self.logger.log(window.level, "%s: %d more in the last %.0f s", summary, window.count, now - window.started)

    def _flush_later(self, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: the next event of the kind reports the count
            return
        self._timers = [t for t in self._timers if not t.cancelled() and t.when() > loop.time()]
        self._timers.append(loop.call_later(max(delay, 0.0), self.flush))


