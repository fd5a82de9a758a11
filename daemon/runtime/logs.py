"""Logging set-up: one line per event, secrets masked, fit for a terminal and for journald.

On a terminal: a timestamped, human line. Under systemd (stderr is not a TTY and JOURNAL_STREAM
is set): a ``<N>`` syslog priority prefix that journald turns into the entry's priority, and no
timestamp (the journal has its own).
"""

from __future__ import annotations

import logging
import os
import sys

from daemon.core.redact import RedactingFilter, Redactor

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{_PRIORITY.get(record.levelno, 6)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def setup_logging(level: str, redactor: Redactor) -> logging.Handler:
    """Route every log record through one redacting stderr handler; returns the handler."""
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM") and not sys.stderr.isatty():
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(redactor))
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
