"""The socket server's idle timeout: one timer per connection instead of one per request.

``async with asyncio.timeout()`` around each read made, and then cancelled, a timer for every request
(about 4 % of the daemon's CPU per send under 64 busy clients). ``IdleWatch`` keeps one timer per
connection: ``guard`` only notes when the wait for the next request began, and the timer, when it
fires, compares that with the clock and re-arms itself for the wait's own deadline. A wait that
reaches ``timeout`` is cancelled and ``guard`` raises ``IdleTimeout``, as the per-request timeout did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class IdleTimeout(Exception):
    """No request arrived within the idle timeout."""


class IdleWatch:
    """Bounds each ``guard``ed wait of the current task to ``timeout`` seconds with one re-armed timer."""

    def __init__(self, timeout: float) -> None:
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._timeout = timeout
        self._since: float | None = None  # when the current wait began; None: not waiting
        self._fired = False
        self._timer: asyncio.TimerHandle | None = self._loop.call_at(self._loop.time() + timeout, self._check)

    async def guard(self, waiting: Awaitable[T]) -> T:
        """``await waiting``, or raise IdleTimeout once it has taken ``timeout`` seconds."""
        if self._timer is None:
            raise RuntimeError("IdleWatch is closed")
        self._since = self._loop.time()
        try:
            return await waiting
        except asyncio.CancelledError:
            # ours only if the timer fired and nobody else cancelled the task too
            if self._fired and self._task.uncancel() == 0:
                raise IdleTimeout from None
            raise
        finally:
            self._since = None
            self._fired = False

    def close(self) -> None:
        """Stop the timer (the connection ended, or it became a subscription, which only reads)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        now = self._loop.time()
        since = self._since
        if since is None:  # between requests (being served): the next wait starts its own count
            due = now + self._timeout
        elif now - since >= self._timeout:
            if not self._fired:
                self._fired = True
                self._task.cancel()
            due = now + self._timeout
        else:  # a wait that began after the last check: check again at its own deadline
            due = since + self._timeout
        self._timer = self._loop.call_at(due, self._check)
