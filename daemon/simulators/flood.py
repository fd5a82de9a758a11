"""Telegram's flood control, as the simulator enforces it: about 30 messages a second per bot and
about 1 a second per chat, with a little burst allowance. Beyond them: a 429 with ``retry_after``.

Off until ``TelegramSimulator.limit_rate`` is called (unit tests send freely); the pacing tests and
the benchmark turn it on with the limits the daemon is configured for.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from daemon.core.ratelimit import TokenBucket

DEFAULT_BURST = 3.0  # sends a bucket lets through back to back: absorbs network jitter, as Telegram does


class FloodControl:
    """A global bucket and one per chat; ``check(chat_id)`` spends from both, or says how long to wait."""

    def __init__(self, rate_global: float, rate_per_chat: float, *, burst: float = DEFAULT_BURST,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_chat = rate_per_chat
        self.burst = burst
        self.clock = clock
        self._global = TokenBucket(rate_global, capacity=max(burst, 1.0))
        self._chats: dict[int, TokenBucket] = {}
        self.refusals = 0  # 429s answered because a limit was exceeded

    def check(self, chat_id: int) -> int | None:
        """None when the send is within the limits (and is counted), else the whole seconds to wait."""
        now = self.clock()
        chat = self._chats.setdefault(chat_id, TokenBucket(self.rate_per_chat, capacity=max(self.burst, 1.0)))
        wait = max(chat.wait_time(now), self._global.wait_time(now))
        if wait > 0:
            self.refusals += 1
            return max(1, math.ceil(wait))  # aiogram cannot parse a fractional retry_after
        chat.take(now)
        self._global.take(now)
        return None
