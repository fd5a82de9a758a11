"""What a client of the protocol raises, whichever client (async or blocking) it uses."""

from __future__ import annotations

TYPE_CHECKING = False  # typing is for mypy only: a CLI process does not import it (~3 ms; issue 14)
if TYPE_CHECKING:
    import os

    from daemon.protocol.shapes import ErrorJSON

# -- what a client raises -------------------------------------------------------------------------
# Shared by the async client (``daemon.client``: the TUI, tests) and the blocking one
# (``daemon.blocking_client``: the CLI), so callers catch one set of errors whichever they use.

class ClientError(Exception):
    """Root of the client's errors."""


class DaemonUnavailable(ClientError):
    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(
            f"cannot reach the daemon at {path}: {reason}. Is it running? Start it with `fnotify run`."
        )
        self.path = path


class RemoteError(ClientError):
    """The daemon refused the request; ``code`` and ``field`` say why."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


def remote_error(err: ErrorJSON) -> RemoteError:
    """The exception for a refusal the daemon sent."""
    return RemoteError(err["code"], err["message"], err.get("field"))
