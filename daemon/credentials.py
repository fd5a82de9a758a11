"""systemd credentials (``LoadCredential=`` and friends): where secrets come from under a unit.

Read by the config loader and by ``fnotify check``; a module of its own so that the config layer
does not depend on the runtime's systemd glue."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path


def credentials_directory(environ: Mapping[str, str] | None = None) -> Path | None:
    """``$CREDENTIALS_DIRECTORY`` (LoadCredential= and friends), if set."""
    value = (os.environ if environ is None else environ).get("CREDENTIALS_DIRECTORY")
    return Path(value) if value else None


def read_credential(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The text of credential ``name``, stripped; None when absent or empty.

    Empty counts as absent: the unit's ``SetCredential=name:\\n`` fallback (which keeps a missing
    file from failing the start) must not override a value from the config file.
    """
    directory = credentials_directory(environ)
    if directory is None:
        return None
    with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
        value = (directory / name).read_text(encoding="utf-8").strip()
        return value or None
    return None
