"""Find the daemon's socket for a client command, reading only what that needs.

``send``, ``show``, ``list`` and the rest need one thing from the config: the socket path. They read
``[daemon] socket`` and ``state_dir`` from the TOML file with the standard library instead of
loading (and importing) the whole typed config; a channel section the daemon would refuse, or that
holds its secrets in a credential, does not stop them. The rules are those of ``daemon.config``
(both use ``daemon.paths``): ``--socket``, else ``$FNOTIFY_SOCKET``, else the config's.
"""

from __future__ import annotations

import os

from daemon.core.errors import ConfigError

TYPE_CHECKING = False  # typing is for mypy only: a CLI process does not import it (~3 ms; issue 14)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any


def client_socket_path(socket: str | None, config: str | None) -> str:
    """Where the daemon listens, for a client; ConfigError names the file, key and reason.

    With ``--socket`` or ``$FNOTIFY_SOCKET`` nothing more is imported: pathlib (~3 ms of the CLI's
    80 ms, issue 14) comes in only with the config file."""
    if socket:
        return socket
    if env := os.environ.get("FNOTIFY_SOCKET"):
        return env
    from daemon.paths import config_path, default_state_dir, socket_path

    path, required = config_path(config)
    section = _daemon_section(path, required)
    base = path.resolve().parent
    state_dir = _path(section, "state_dir", path)
    sock = _path(section, "socket", path)
    return str(socket_path(
        None if sock is None else sock if sock.is_absolute() else base / sock,
        default_state_dir() if state_dir is None else state_dir if state_dir.is_absolute() else base / state_dir,
    ))


def _daemon_section(path: Path, required: bool) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise ConfigError(f"{path}: no such file")
        return {}
    import tomllib  # here, not at the top: with --socket or $FNOTIFY_SOCKET no config is read (~9 ms)

    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    section = raw.get("daemon", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [daemon]: must be a table")
    return section


def _path(section: dict[str, Any], key: str, path: Path) -> Path | None:
    value = section.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or "\x00" in value:
        raise ConfigError(f"{path}: [daemon] {key}: must be a non-empty path")
    from pathlib import Path  # already loaded with the config file's path

    return Path(value)
