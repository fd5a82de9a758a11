"""File descriptors: the daemon's share of them, and the connection limits of its HTTP listeners.

Every connection costs a descriptor. A listener that takes connections until ``accept()`` fails
starves everything else in the process: the Unix socket API, the database, the providers'
connections. So at start the soft ``RLIMIT_NOFILE`` is raised to the hard one (systemd's default
soft limit is 1,024, the hard one far higher), and the HTTP listeners together are held to what is
left once the Unix socket's ``[daemon] max_connections`` and ``RESERVED_FDS`` are set aside.
"""

from __future__ import annotations

import dataclasses
import logging
import resource
from dataclasses import dataclass

from daemon.config import Config, HttpConfig

log = logging.getLogger(__name__)

RESERVED_FDS = 128
"""Descriptors kept for the daemon's own use: the database (two connections, each with its WAL and
shared memory), the providers' connection pools, the log, the bot's session, a backup in progress."""


@dataclass(frozen=True, slots=True)
class ListenerLimits:
    """What one HTTP listener allows (``[http]`` keys of the same names; ``daemon.http_guard`` enforces them)."""

    max_connections: int = 256
    header_timeout: float = 10.0
    body_timeout: float = 30.0

    @classmethod
    def from_config(cls, http: HttpConfig) -> ListenerLimits:
        return cls(http.max_connections, http.header_timeout, http.body_timeout)


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit in force.

    Under the shipped unit ``setrlimit`` is refused (``SystemCallFilter=~@resources``) and
    ``LimitNOFILE=`` has set both limits already, so a refusal is only logged at debug level.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard or (hard == resource.RLIM_INFINITY and soft >= 1 << 20):
        return soft
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (OSError, ValueError) as exc:
        log.debug("could not raise the file descriptor limit from %d to %d: %s", soft, wanted, exc)
        return soft
    return wanted


def http_listener_limits(config: Config, fd_limit: int | None = None) -> ListenerLimits:
    """``[http]`` limits for each HTTP listener (the API, the Telegram webhook, the metrics endpoint), with
    ``max_connections`` lowered, and a warning logged, when those listeners together could use up the
    descriptors."""
    limits = ListenerLimits.from_config(config.http)
    listeners = (int(config.http.enabled) + int(config.telegram.enabled and config.telegram.mode == "webhook")
                 + int(config.metrics.enabled))
    if listeners == 0:
        return limits
    if fd_limit is None:
        fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    budget = fd_limit - config.daemon.max_connections - RESERVED_FDS
    cap = max(budget // listeners, 1)
    if limits.max_connections <= cap:
        return limits
    log.warning("[http] max_connections = %d is more than this process can hold: the file descriptor limit is "
                "%d, of which %d are kept for the Unix socket ([daemon] max_connections) and the daemon's own "
                "files; serving at most %d connection(s) per HTTP listener (raise LimitNOFILE= to allow more)",
                limits.max_connections, fd_limit, fd_limit - budget, cap)
    return dataclasses.replace(limits, max_connections=cap)
