"""Rate limits every daemon on one PostgreSQL shares: the ``rate_limits`` rows of
``migrations/postgres/0006_rate_limits.sql``, one call of ``fnotify_rate_reserve`` (one round trip) per question.

Time is the database server's (see the migration for why), unless a test injects a clock: then the
same arithmetic runs on the injected seconds, so the contract tests step time instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from daemon.core.ratelimit import Limit, Reservation
from daemon.storage.postgres_schema import translate

if TYPE_CHECKING:
    import asyncpg
    from asyncpg import Record

__all__ = ["RESERVE", "PostgresRateLimits"]

RESERVE = ("SELECT reserved, wait FROM fnotify_rate_reserve($1::text[], $2::float8[], $3::float8[], $4::float8[],"
           " $5::float8)")
BLOCK = """
INSERT INTO rate_limits (key, tat) VALUES ($1, coalesce($3::float8, extract(epoch FROM clock_timestamp())) + $2)
ON CONFLICT (key) DO UPDATE SET tat = greatest(rate_limits.tat, excluded.tat)
"""


class PostgresRateLimits:
    """``daemon.core.ratelimit.RateLimitStore`` on the pool ``pool()`` returns (the store's, once open)."""

    def __init__(self, pool: Callable[[], asyncpg.Pool[Record]], clock: Callable[[], float] | None = None) -> None:
        self._pool = pool
        self.clock = clock  # None: the database server's clock

    async def reserve(self, limits: Sequence[Limit]) -> Reservation:
        keys = [limit.key for limit in limits]
        if keys != sorted(keys) or len(set(keys)) != len(keys):
            raise ValueError(f"rate limit keys must be distinct and sorted: {keys}")  # else: deadlocks
        now = self.clock() if self.clock is not None else None
        with translate("rate limit"):
            row = await self._pool().fetchrow(RESERVE, keys, [limit.interval for limit in limits],
                                              [limit.tolerance for limit in limits],
                                              [limit.max_skip for limit in limits], now)
        assert row is not None  # a function with OUT parameters returns one row
        return Reservation(bool(row["reserved"]), max(float(row["wait"]), 0.0))

    async def block(self, limit: Limit, seconds: float) -> None:
        now = self.clock() if self.clock is not None else None
        with translate("rate limit"):
            await self._pool().execute(BLOCK, limit.key, seconds + limit.tolerance, now)
