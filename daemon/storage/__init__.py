"""Storage: every line of SQL lives under this package, behind the ``Store`` interface."""

from daemon.storage.base import Store
from daemon.storage.sqlite import SqliteStore

__all__ = ["SqliteStore", "Store"]
