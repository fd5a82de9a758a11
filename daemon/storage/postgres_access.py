"""What the mixins of ``PostgresStore`` (SMS ledger, groups) call on the store they are mixed into,
declared once: ``PostgresStore`` itself defines them (its pool and transactions)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asyncpg import Record

    from daemon.storage.postgres_writes import Conn


class PostgresAccess:
    def _tx(self, what: str = "database write") -> AbstractAsyncContextManager[Conn]:
        raise NotImplementedError

    async def _one(self, query: str, *args: Any) -> Record | None:
        raise NotImplementedError

    async def _all(self, query: str, *args: Any) -> list[Record]:
        raise NotImplementedError
