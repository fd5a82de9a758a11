"""Rate limits: pace sends under a provider's limits instead of provoking its 429s, for the whole install.

A limit is kept as GCRA (the generic cell rate algorithm): one number per key, its *theoretical arrival
time* ``tat``. A send to keys ``k1..kn`` at time ``now`` may go at ``at = max(now, tat_k - tolerance_k)``
for every key, and then moves each ``tat_k`` to ``max(tat_k, at) + interval_k``. ``reserve`` is that
arithmetic, pure; a ``RateLimitStore`` applies it atomically and says how long the caller must wait
(a reservation: callers are served in the order they ask, nobody polls). Two stores:

- ``MemoryRateLimits`` (here): one daemon's memory. On SQLite one daemon owns the database (its lock
  file), so its limits already are the install's.
- ``PostgresRateLimits`` (``daemon.storage.postgres_ratelimit``): a row per key in ``rate_limits``,
  shared by every daemon on the database, read and moved in one round trip.

``Pacer`` is what a channel adapter holds: its channel-wide limit (Telegram's per bot, ``[email] rate``,
``[sms] rate``) and, for Telegram, one per chat; ``acquire(key)`` asks the store and sleeps the answer.
A provider's own "retry after N seconds" for a key is honoured with ``block(key, seconds)``: every
send to that key, from every daemon, waits it out rather than each one earning another 429.

``TokenBucket`` is the simulators' flood control (``daemon.simulators.flood``), kept beside it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)

EPSILON = 1e-9  # float dust: a bucket refilled for exactly 1/rate seconds may fall short by 1e-15
PRUNE_ABOVE = 4096  # keys kept in memory before the idle ones (tat in the past, lock free) are dropped
MIN_RETRY = 0.001  # a reservation refused is asked again after at least this: never a busy loop


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




# -- GCRA -----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``rate`` sends a second under ``key``, ``burst`` of them back to back.

    ``max_skip``: when a send is held back by another of its limits (a Telegram chat's 1/s), how many
    seconds of this limit's free capacity its reservation may leap over. A reservation moves the key's
    tat past its moment, so a bot-wide slot booked a second ahead for a busy chat would make every other
    chat queue behind it; beyond ``max_skip`` nothing is booked and the caller asks again nearer the time.
    """

    key: str
    rate: float
    burst: int = 1
    max_skip: float = math.inf

    def __post_init__(self) -> None:
        if not self.key or not self.rate > 0 or not math.isfinite(self.rate) or self.burst < 1 or self.max_skip < 0:
            raise ValueError(f"rate limit {self.key!r}: key, rate > 0, burst >= 1 and max_skip >= 0 required")

    @property
    def interval(self) -> float:
        """Seconds between two sends at the steady rate (GCRA's emission interval)."""
        return 1.0 / self.rate

    @property
    def tolerance(self) -> float:
        """How far ahead of its tat a send may go: room for ``burst - 1`` extra sends."""
        return (self.burst - 1) * self.interval


@dataclass(frozen=True, slots=True)
class Reservation:
    """``reserved``: a slot is booked, send in ``wait`` seconds. Else nothing is booked (another limit
    holds the send back too far, see ``Limit.max_skip``): ask again in ``wait`` seconds."""

    reserved: bool
    wait: float


def reserve(tats: Mapping[str, float], limits: Sequence[Limit], now: float) -> tuple[Reservation, dict[str, float]]:
    """The answer to a send under every one of ``limits`` at ``now``, and the keys' tats that change.

    The send takes a slot on every key at one moment ``at``, the latest any of them allows: booking
    them one by one would charge a key for a moment its send did not go. ``tats`` lacks unused keys.
    """
    free = [max(now, tats[limit.key] - limit.tolerance) if limit.key in tats else now for limit in limits]
    at = max([now, *free])
    # a key whose free capacity the send would leap over by more than max_skip: ask again once the
    # leap is small enough, whatever else happens meanwhile (at - max_skip, the latest of them)
    asks = [at - limit.max_skip for limit, f in zip(limits, free, strict=True) if at - f > limit.max_skip]
    if asks:
        return Reservation(False, max(asks) - now), {}
    return Reservation(True, at - now), {limit.key: max(tats.get(limit.key, at), at) + limit.interval
                                         for limit in limits}


def blocked_tat(tat: float | None, limit: Limit, until: float) -> float:
    """``limit``'s tat once nothing may go under it before ``until`` (a provider's retry_after)."""
    return max(tat if tat is not None else -math.inf, until + limit.tolerance)


class RateLimitStore(Protocol):
    """Where the tats live: this daemon's memory, or the database every daemon shares."""

    async def reserve(self, limits: Sequence[Limit]) -> Reservation:
        """``reserve`` (above) on the stored tats, atomically; ``limits`` ordered by key. Raises
        StorageError when the store cannot answer: then nothing may be sent."""
        ...

    async def block(self, limit: Limit, seconds: float) -> None:
        """Nothing goes under ``limit`` for ``seconds`` from now."""
        ...


class MemoryRateLimits:
    """The tats in this daemon's memory, on its monotonic clock (or an injected one)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._tats: dict[str, float] = {}

    async def reserve(self, limits: Sequence[Limit]) -> Reservation:
        now = self.clock()
        if len(self._tats) >= PRUNE_ABOVE:
            self._prune(now)
        answer, tats = reserve(self._tats, limits, now)
        self._tats.update(tats)
        return answer

    async def block(self, limit: Limit, seconds: float) -> None:
        self._tats[limit.key] = blocked_tat(self._tats.get(limit.key), limit, self.clock() + seconds)

    def _prune(self, now: float) -> None:
        # a tat in the past says nothing a missing key does not, but for a burst after a long pause
        for key in [k for k, tat in self._tats.items() if tat <= now]:
            del self._tats[key]


class Pacer:
    """One channel's pace: ``shared`` for every send (Telegram's per-bot limit, ``[email] rate``), and,
    when ``per_key_rate`` is set, one limit per key under ``per_key_prefix`` (a Telegram chat).

    This daemon's sends to one key ask the store one at a time, in order (a lock per key, held until
    the send's moment): a busy chat costs the store one question a send, not one per waiting send."""

    def __init__(self, store: RateLimitStore, shared: Limit | None, *, per_key_rate: float | None = None,
                 per_key_prefix: str = "", sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.store = store
        self.shared = shared
        self.per_key_rate = per_key_rate
        self.per_key_prefix = per_key_prefix
        self.sleep = sleep
        self._locks: dict[Hashable, asyncio.Lock] = {}

    def limits(self, key: Hashable | None = None) -> list[Limit]:
        """The limits a send to ``key`` is under, ordered by key: every store locks them in that order."""
        limits = [] if self.shared is None else [self.shared]
        if key is not None and self.per_key_rate is not None:
            limits.append(self._key_limit(key))
        return sorted(limits, key=lambda limit: limit.key)

    async def acquire(self, key: Hashable | None = None) -> None:
        """Wait until a send to ``key`` is within every limit; the slot is booked for it."""
        limits = self.limits(key)
        if not limits:
            return
        async with self._lock(key):
            while not (answer := await self.store.reserve(limits)).reserved:
                await self.sleep(max(answer.wait, MIN_RETRY))
            if answer.wait > 0:
                await self.sleep(answer.wait)

    async def block(self, key: Hashable, seconds: float) -> None:
        """The provider asked us to wait ``seconds`` before sending to ``key`` again. Best effort: the
        429 that said so is retried after ``seconds`` anyway, so a store error here is only logged."""
        if self.per_key_rate is None:
            return
        try:
            await self.store.block(self._key_limit(key), seconds)
        except Exception as exc:  # StorageError above all: the send path has its own answer to that
            log.warning("could not record the provider's retry_after for %s: %s", key, exc)

    def _key_limit(self, key: Hashable) -> Limit:
        assert self.per_key_rate is not None
        return Limit(f"{self.per_key_prefix}{key}", self.per_key_rate)

    def _lock(self, key: Hashable | None) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            if len(self._locks) >= PRUNE_ABOVE:
                for idle in [k for k, held in self._locks.items() if not held.locked()]:
                    del self._locks[idle]
            lock = self._locks[key] = asyncio.Lock()
        return lock
