"""Where things are: the config file, the state directory, the socket. Standard library only, so a
client command (``fnotify send``) can find the daemon without importing the config models."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CONFIG_NAME = "fnotify.toml"
SOCKET_NAME = "fnotify.sock"


def config_path(explicit: str | os.PathLike[str] | None) -> tuple[Path, bool]:
    """The config file (``--config``, else ``$FNOTIFY_CONFIG``, else ``./fnotify.toml``) and whether it
    must exist (it was named explicitly)."""
    if explicit:
        return Path(explicit), True
    if env := os.environ.get("FNOTIFY_CONFIG"):
        return Path(env), True
    return Path(DEFAULT_CONFIG_NAME), False


def default_state_dir() -> Path:
    """``$STATE_DIRECTORY`` (systemd ``StateDirectory=``), else ``$XDG_STATE_HOME/failover-notify``."""
    if state := os.environ.get("STATE_DIRECTORY"):
        return Path(state.split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "failover-notify"


def socket_path(socket: Path | None, state_dir: Path) -> Path:
    """``[daemon] socket`` if set, else ``$RUNTIME_DIRECTORY/fnotify.sock``, else ``<state_dir>/fnotify.sock``."""
    if socket is not None:
        return socket
    if runtime := os.environ.get("RUNTIME_DIRECTORY"):
        return Path(runtime.split(":")[0]) / SOCKET_NAME
    return state_dir / SOCKET_NAME
