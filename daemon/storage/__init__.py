"""Storage: every line of SQL lives under this package, behind the ``Store`` interface."""

from daemon.storage.base import AttemptRecord, NotificationUpdate, Store
from daemon.storage.sqlite import SqliteStore

__all__ = ["AttemptRecord", "NotificationUpdate", "SqliteStore", "Store"]
