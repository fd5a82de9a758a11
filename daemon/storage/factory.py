"""Which store the daemon runs on: ``[storage] url``."""

from __future__ import annotations

from daemon.config import Config
from daemon.core.ratelimit import MemoryRateLimits, RateLimitStore
from daemon.core.store import Store
from daemon.storage.sqlite import SqliteStore

__all__ = ["make_rate_limits", "make_store"]


def make_store(config: Config, owner: str | None = None) -> Store:
    """SQLite in ``[daemon] state_dir`` unless ``[storage] url`` names a PostgreSQL database. Not opened yet.
    ``owner`` is the daemon's id: PostgreSQL's change hints name it, so the daemon can skip its own."""
    postgres = config.storage.postgres
    if postgres is None:
        return SqliteStore(config.daemon.database)
    from daemon.storage.postgres import PostgresStore  # asyncpg is imported only when it is used

    return PostgresStore(postgres, owner)


def make_rate_limits(store: Store) -> RateLimitStore:
    """Where the channels' rate limits live: in the database when several daemons share it (PostgreSQL),
    else in this daemon's memory (SQLite: one daemon per install, docs/cluster.md)."""
    if isinstance(store, SqliteStore):
        return MemoryRateLimits()
    from daemon.storage.postgres import PostgresStore

    if isinstance(store, PostgresStore):
        return store.rate_limits()
    return MemoryRateLimits()  # a store of a test's own
