"""Storage: every line of SQL lives under this package, behind ``daemon.core.store.Store``: SQLite
(``sqlite*``) and PostgreSQL (``postgres*``), picked by ``factory.make_store`` from ``[storage] url``,
their schemas as versioned migrations under ``migrations/``.

May import ``daemon.core`` and ``daemon.config``; never the channels, APIs, runtime, bot or TUI.
"""

from daemon.core.store import Store
from daemon.storage.sqlite import SqliteStore

__all__ = ["SqliteStore", "Store"]
