"""Keep secrets out of logs, attempt errors and replies.

Every configured secret is replaced wherever it appears, and anything shaped like a Telegram
bot token (``123456:ABC...``, also inside ``/bot<token>/`` URLs) is masked even when it is not
the configured one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

MASK = "[REDACTED]"
_BOT_TOKEN = re.compile(r"\b\d{3,}:[A-Za-z0-9_-]{20,}")
_BOT_URL = re.compile(r"/bot[^/\s]+/")
_BASIC_AUTH_URL = re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+@")


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.update(secrets)

    def update(self, secrets: Iterable[str]) -> None:
        # longest first, so a secret containing another is masked whole
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        text = _BOT_URL.sub(f"/bot{MASK}/", text)
        text = _BOT_TOKEN.sub(MASK, text)
        return _BASIC_AUTH_URL.sub(f"{MASK}@", text)


class RedactingFilter(logging.Filter):
    """A handler filter that renders each record once and masks secrets in the result."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
        record.msg, record.args = self.redactor(message), None
        return True
