"""Exception tree of the daemon. Each component raises its own root; boundaries translate.

    FnotifyError
    ├── ConfigError            bad configuration file or environment (names file, key, reason)
    ├── ValidationError        bad input at the edge (names the field)
    ├── NotFound               no such notification / recipient
    ├── Conflict               the request contradicts current state (e.g. cancel a delivered one)
    ├── StorageError           the database refused a write or cannot be opened
    │   ├── StorageUnreachable the database server named by [storage] url cannot be reached at start
    │   └── LeaseLost          another daemon took over a notification this one held (its lease ran out)
    └── ChannelError           raised by channel adapters, classified for the failover engine
        ├── TransientError     try the same channel again later (network, 5xx, 429)
        └── PermanentError     this channel will not work for this message: fail over now

Adapters map their library's exceptions onto ChannelError with ``raise ... from exc``
and nowhere else does any code look at aiogram, aiosmtplib or httpx errors.
"""

from __future__ import annotations


class FnotifyError(Exception):
    """Root of every error the daemon raises on purpose."""

    code = "error"


class ConfigError(FnotifyError):
    code = "config"


class ValidationError(FnotifyError):
    code = "invalid"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NotFound(FnotifyError):
    code = "not_found"


class Conflict(FnotifyError):
    code = "conflict"


class StorageError(FnotifyError):
    code = "storage"


class StorageUnreachable(StorageError):
    """At start: the PostgreSQL server of ``[storage] url`` refused or did not answer. A configuration
    error as far as ``fnotify run`` is concerned (exit status 2): the URL points at nothing usable."""


class LeaseLost(StorageError):
    """A write for a notification whose claim this daemon no longer holds: its lease ran out and another
    daemon took the notification over (recording this one's attempt ``interrupted``). Nothing is written."""


class ChannelError(FnotifyError):
    code = "channel"


class TransientError(ChannelError):
    """Retry the same channel; ``retry_after`` (seconds) overrides the backoff when the provider says so.
    ``rate_limited``: the provider's flood control refused it (a 429), which does not count as a try."""

    def __init__(self, message: str, retry_after: float | None = None, *, rate_limited: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.rate_limited = rate_limited


class PermanentError(ChannelError):
    """Fail over to the next channel at once. ``blocked`` marks a Telegram user who blocked the bot."""

    def __init__(self, message: str, *, blocked: bool = False) -> None:
        super().__init__(message)
        self.blocked = blocked
