"""``fnotify run``: the daemon in the foreground."""

from __future__ import annotations

import asyncio
import logging

from daemon.api.resources import raise_fd_limit
from daemon.config import Config, exposed_secrets
from daemon.core.errors import FnotifyError, StorageUnreachable
from daemon.core.redact import Redactor
from daemon.runtime.app import Daemon
from daemon.runtime.logs import setup_logging
from daemon.runtime.systemd import listen_socket

log = logging.getLogger("daemon")


def run_daemon(config: Config) -> int:
    redactor = Redactor(config.secrets())
    setup_logging(config.daemon.log_level, redactor, config.daemon.log_format)
    if warning := exposed_secrets(config):
        log.warning("%s", warning)
    fd_limit = raise_fd_limit()  # before any listener: their connection caps are set against it
    log.debug("file descriptor limit: %d", fd_limit)
    try:
        sock = listen_socket()  # socket activation: the .socket unit's listening socket, if passed
        asyncio.run(Daemon(config, redactor=redactor, listen_socket=sock).run_until_signalled())
    except StorageUnreachable as exc:  # [storage] url points at nothing usable: a configuration error
        log.error("cannot start: %s", exc)
        return 2
    except FnotifyError as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0
