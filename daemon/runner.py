"""``fnotify run``: the daemon in the foreground."""

from __future__ import annotations

import asyncio
import logging

from daemon.app import Daemon
from daemon.config import Config
from daemon.errors import FnotifyError
from daemon.logs import setup_logging
from daemon.redact import Redactor
from daemon.systemd import listen_socket

log = logging.getLogger("daemon")


def run_daemon(config: Config) -> int:
    redactor = Redactor(config.secrets())
    setup_logging(config.daemon.log_level, redactor, config.daemon.log_format)
    try:
        sock = listen_socket()  # socket activation: the .socket unit's listening socket, if passed
        asyncio.run(Daemon(config, redactor=redactor, listen_socket=sock).run_until_signalled())
    except FnotifyError as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0
