"""Storage: every line of SQL lives under this package, behind ``daemon.core.store.Store``.

May import ``daemon.core`` and ``daemon.config``; never the channels, APIs, runtime, bot or TUI.
"""

from daemon.core.store import AttemptRecord, NotificationUpdate, Store
from daemon.storage.sqlite import SqliteStore

__all__ = ["AttemptRecord", "NotificationUpdate", "SqliteStore", "Store"]
