"""Logging set-up: one line per event, secrets masked, fit for a terminal and for journald.

On a terminal: a timestamped, human line. Under systemd (stderr is not a TTY and JOURNAL_STREAM
is set): a ``<N>`` syslog priority prefix that journald turns into the entry's priority, and no
timestamp (the journal has its own).

Every message is escaped (``printable``) after it is rendered: a string a client sent (a backup
path, a request path) cannot end the line and forge another entry. Only a traceback spans lines.
``LogThrottle`` keeps an event that can come by the thousand (a connection flood, accept() out of
file descriptors) to one line a minute.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from daemon.redact import RedactingFilter, Redactor

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")  # tab is left alone: it starts no line
_ESCAPES = {"\n": "\\n", "\r": "\\r"}


def printable(value: object) -> str:
    """``str(value)`` with control characters escaped (``\\n``, ``\\x1b``, ``\\u2028``)."""
    return _CONTROL.sub(_escape, str(value))


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _ESCAPES.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


class JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{_PRIORITY.get(record.levelno, 6)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


class OneLineFilter(logging.Filter):
    """A handler filter (after redaction) that renders the message once and escapes it onto one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = printable(record.getMessage()), None
        return True


def setup_logging(level: str, redactor: Redactor) -> logging.Handler:
    """Route every log record through one redacting stderr handler; returns the handler."""
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM") and not sys.stderr.isatty():
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(redactor))
    handler.addFilter(OneLineFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    set_level(level)
    return handler


NOISY_LIBRARIES = ("aiogram", "apscheduler", "httpx", "httpcore", "aiosqlite", "mail.log", "aiohttp.access")


def set_level(level: str) -> None:
    """Our level on the root logger; the libraries' own chatter stays at WARNING unless we debug.
    Used at start and on SIGHUP."""
    logging.getLogger().setLevel(level)
    for noisy in NOISY_LIBRARIES:
        logging.getLogger(noisy).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)


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


RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def throttle_resource_errors(loop: asyncio.AbstractEventLoop, throttle: LogThrottle | None = None) -> None:
    """Make the event loop's "socket.accept() out of system resource" one throttled line.

    When accept() fails for want of file descriptors, asyncio logs the error with a traceback, and
    on Python 3.11 up to 100 times per listening socket per retry: megabytes of log a second while
    the daemon is starved. Other loop errors go to the handler that was there before.
    """
    if not isinstance(loop.get_exception_handler(), _ResourceErrors):
        loop.set_exception_handler(_ResourceErrors(loop.get_exception_handler(),
                                                   throttle or LogThrottle(logging.getLogger("asyncio"))))


LoopErrorHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]


class _ResourceErrors:
    def __init__(self, previous: LoopErrorHandler | None, throttle: LogThrottle) -> None:
        self.previous = previous
        self.throttle = throttle

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS:
            self.throttle.log(logging.ERROR, f"{context.get('message', 'out of system resource')}: {exc.strerror}",
                              "; raise LimitNOFILE= or lower [http] max_connections / [daemon] max_connections")
        elif self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)
