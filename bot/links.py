"""Opt-in deep links: ``https://t.me/<bot username>?start=<token>``.

A token is 24 random bytes from ``secrets`` (32 characters of ``A-Za-z0-9_-``; Telegram allows 64 in
a /start payload). The store keeps only its SHA-256 and the expiry; redeeming it is single use and
atomic (``Store.redeem_link_token``). Nothing here imports aiogram.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from daemon.core.models import iso_at, utcnow
from daemon.protocol import LinkJSON

TOKEN_BYTES = 24
START_PAYLOAD = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""What Telegram accepts after ``?start=``; anything else cannot be one of our tokens."""


def new_token() -> str:
    """An unguessable token fit for a /start payload."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def is_start_payload(text: str) -> bool:
    return START_PAYLOAD.fullmatch(text) is not None


def deep_link(username: str, token: str) -> str:
    """The link that opens the bot's chat and sends ``/start <token>`` when the user taps Start."""
    return f"https://t.me/{username.lstrip('@')}?start={token}"


class LinkIssuer:
    """Issues links for ``Service.link_recipient``; ``username`` is the bot's (getMe, cached by the bot)."""

    def __init__(
        self,
        save: Callable[[int, str, datetime, datetime], Awaitable[None]],
        ttl: float,
        username: Callable[[], Awaitable[str]],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.save = save  # Service.save_link_token: (recipient_id, token, now, expires_at)
        self.ttl = ttl
        self.username = username
        self.clock = clock

    async def issue(self, recipient_id: int) -> LinkJSON:
        """Store a new token for ``recipient_id`` and return ``url``, ``token`` and ``expires_at``."""
        username = await self.username()  # first: nothing is stored when Telegram cannot be reached
        now = self.clock()
        expires_at = now + timedelta(seconds=self.ttl)
        token = new_token()
        await self.save(recipient_id, token, now, expires_at)
        return {
            "recipient_id": recipient_id,
            "url": deep_link(username, token),
            "token": token,
            "expires_at": iso_at(expires_at),
            "bot": f"@{username.lstrip('@')}",
        }
