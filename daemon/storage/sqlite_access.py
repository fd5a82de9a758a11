"""What the mixins of ``SqliteStore`` (engine side, SMS ledger, groups) call on the store they are mixed
into, declared once: ``SqliteStore`` itself defines them (the group-commit writer and the read connection)."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable
from typing import Any


class SqliteAccess:
    def _submit(self, op: Any) -> Awaitable[Any]:
        raise NotImplementedError

    async def _one(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        raise NotImplementedError

    async def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError
