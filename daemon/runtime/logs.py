"""Logging set-up: one line per event, secrets masked, fit for a terminal and for journald.

On a terminal: a timestamped, human line. Under systemd (stderr is not a TTY and JOURNAL_STREAM
is set): a ``<N>`` syslog priority prefix that journald turns into the entry's priority, and no
timestamp (the journal has its own).

Every message is escaped (``printable``) after it is rendered: a string a client sent (a backup
path, a request path) cannot end the line and forge another entry. Only a traceback spans lines.
``LogThrottle`` keeps an event that can come by the thousand (a connection flood, accept() out of
file descriptors) to one line a minute.

``[daemon] log_format = "json"``: one JSON object per line instead, for log shippers (see
``JsonFormatter``); under journald it keeps the priority prefix, which journald strips.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from daemon.core.logsafe import LogThrottle, printable
from daemon.core.redact import RedactingFilter, Redactor

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}
class JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{_PRIORITY.get(record.levelno, 6)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


class OneLineFilter(logging.Filter):
    """A handler filter (after redaction) that renders the message once and escapes it onto one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = printable(record.getMessage()), None
        return True


JSON_FIELDS = ("notification_id", "recipient_id", "channel", "outcome", "duration_ms")
"""Passed as ``extra=`` where known (the engine's line per attempt); copied into the JSON object."""


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...}`` on one line. The message is the record as the
    RedactingFilter left it (rendered once, secrets masked); of the extras only JSON_FIELDS are
    written, and only as numbers or plain strings (ids, channel and outcome names), so nothing else
    a record carries can leak into the log."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in JSON_FIELDS:
            value = getattr(record, key, None)
            if isinstance(value, int | float | str) and not isinstance(value, bool):
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


class JsonJournalFormatter(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


def setup_logging(level: str, redactor: Redactor, log_format: str = "text") -> logging.Handler:
    """Route every log record through one redacting stderr handler; returns the handler.
    ``log_format``: ``"text"`` (a human line) or ``"json"`` (one JSON object per line)."""
    handler = logging.StreamHandler(sys.stderr)
    journal = bool(os.environ.get("JOURNAL_STREAM")) and not sys.stderr.isatty()
    if log_format == "json":
        handler.setFormatter(JsonJournalFormatter() if journal else JsonFormatter())
    elif journal:
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
