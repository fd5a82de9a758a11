"""Token buckets: pace sends under a provider's limits instead of provoking its 429s.

``TokenBucket`` is pure arithmetic on an injected clock (tested without sleeping). ``Pacer``
combines one global bucket with one bucket per key (a Telegram chat): ``acquire(key)`` returns when
both allow one more send. Sends to one key are served in order (a lock per key), so a key's bucket
is charged at the moment its send really goes out; the global bucket is charged under its own
lock, held only while waiting for a global token, so a slow chat never holds up the others.

A provider's own "retry after N seconds" for a key is honoured with ``block(key, seconds)``: every
send to that key waits it out, rather than each one earning another 429.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field

EPSILON = 1e-9  # float dust: a bucket refilled for exactly 1/rate seconds may fall short by 1e-15
PRUNE_ABOVE = 4096  # idle per-key buckets kept before the full ones are dropped


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens a second, at most ``capacity`` saved up; one token per send."""

    rate: float
    capacity: float = 1.0
    tokens: float = field(default=-1.0)  # -1: start full
    updated: float = 0.0
    blocked_until: float = 0.0

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.capacity < 1:
            raise ValueError("rate must be > 0 and capacity >= 1")
        if self.tokens < 0:
            self.tokens = self.capacity

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def wait_time(self, now: float) -> float:
        """Seconds until one token is available (0: now)."""
        self._refill(now)
        short = 0.0 if self.tokens >= 1 - EPSILON else (1 - self.tokens) / self.rate
        return max(short, self.blocked_until - now, 0.0)

    def take(self, now: float) -> None:
        """Spend one token (may go below zero: the debt is waited off by the next sender)."""
        self._refill(now)
        self.tokens -= 1

    def try_take(self, now: float) -> bool:
        """Spend a token if one is available now (the simulator's flood check)."""
        if self.wait_time(now) > 0:
            return False
        self.take(now)
        return True

    def block(self, until: float) -> None:
        """No token before ``until`` (a provider's retry_after)."""
        self.blocked_until = max(self.blocked_until, until)

    def is_idle(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.capacity and self.blocked_until <= now


@dataclass(slots=True)
class _Key:
    bucket: TokenBucket
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Pacer:
    """A global bucket and a bucket per key; ``acquire(key)`` before each send."""

    def __init__(
        self,
        rate_global: float,
        rate_per_key: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate_per_key = rate_per_key
        self.clock = clock
        self.sleep = sleep
        self._global = TokenBucket(rate_global)
        self._global_lock = asyncio.Lock()
        self._keys: dict[Hashable, _Key] = {}

    async def acquire(self, key: Hashable) -> None:
        """Wait until a send to ``key`` is within both limits, and charge both buckets."""
        state = self._keys.get(key)
        if state is None:
            if len(self._keys) >= PRUNE_ABOVE:
                self._prune()
            state = self._keys[key] = _Key(TokenBucket(self.rate_per_key, updated=self.clock()))
        async with state.lock:
            await self._wait(state.bucket)
            async with self._global_lock:
                await self._wait(self._global)
                self._global.take(self.clock())
            state.bucket.take(self.clock())

    def block(self, key: Hashable, seconds: float) -> None:
        """The provider asked us to wait ``seconds`` before sending to ``key`` again."""
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _Key(TokenBucket(self.rate_per_key, updated=self.clock()))
        state.bucket.block(self.clock() + seconds)

    async def _wait(self, bucket: TokenBucket) -> None:
        while (delay := bucket.wait_time(self.clock())) > 0:
            await self.sleep(delay)

    def _prune(self) -> None:
        now = self.clock()
        for key in [k for k, s in self._keys.items() if not s.lock.locked() and s.bucket.is_idle(now)]:
            del self._keys[key]


class RateLimiter:
    """One bucket for a whole channel (SMTP relay, SMS provider): ``acquire()`` before each send."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.clock = clock
        self.sleep = sleep
        self._bucket = TokenBucket(rate, updated=clock())
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while (delay := self._bucket.wait_time(self.clock())) > 0:
                await self.sleep(delay)
            self._bucket.take(self.clock())


def limiter(rate: float | None) -> RateLimiter | None:
    """A limiter for ``rate`` sends per second, or None for "no limit"."""
    return RateLimiter(rate) if rate else None
