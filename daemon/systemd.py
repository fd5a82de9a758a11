"""systemd integration: the notify protocol, socket activation, credentials.

Outside systemd all of it is a no-op: without ``$NOTIFY_SOCKET`` nothing is sent, without
``$LISTEN_FDS`` the daemon binds its own socket, without ``$CREDENTIALS_DIRECTORY`` secrets come
from the config file or the environment.

The notify protocol is the few lines sd_notify(3) describes: one datagram of ``KEY=VALUE`` lines
to the ``AF_UNIX`` socket named in ``$NOTIFY_SOCKET``, where a leading ``@`` means the abstract
namespace. We write them here rather than depend on a library: python-systemd needs libsystemd's
headers and a compiler to install, and the pure-Python ``sdnotify`` has seen no release since 2017.

    READY=1        sent once the database is open, pending work re-armed and the socket listening
    STATUS=...     the queue depth, at start and every few seconds
    WATCHDOG=1     every WATCHDOG_USEC / 2, from a task on the event loop: a stuck loop misses it
    RELOADING=1    around a SIGHUP reload, followed by READY=1
    STOPPING=1     as soon as SIGTERM/SIGINT arrives
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from pathlib import Path

from daemon.errors import FnotifyError

log = logging.getLogger(__name__)

SD_LISTEN_FDS_START = 3  # sd_listen_fds(3): passed sockets start at fd 3
STATUS_INTERVAL = 5.0  # seconds between STATUS= updates
LISTEN_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")

StatusSource = Callable[[], Awaitable[str]]


# -- the sandbox ---------------------------------------------------------------------------------

def private_tmp_dirs(mountinfo: str | None = None) -> list[Path]:
    """``/tmp`` and ``/var/tmp`` where they are this service's own (``PrivateTmp=yes``): systemd mounts
    a ``systemd-private-*`` directory over them, which other processes do not see and which is removed
    when the service stops. Read from ``/proc/self/mountinfo`` unless ``mountinfo`` is given."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return []
    found = []
    for line in mountinfo.splitlines():
        fields = line.split()  # id, parent, major:minor, root, mount point, ...
        if len(fields) > 4 and fields[4] in ("/tmp", "/var/tmp") and "/systemd-private-" in fields[3]:
            found.append(Path(fields[4]))
    return found


# -- the notify protocol ------------------------------------------------------------------------

def notify_address(value: str | None) -> str | None:
    """The ``sendto`` address for a ``$NOTIFY_SOCKET`` value: a path, or ``\\0name`` for ``@name``.

    Returns None when unset or of a kind we do not speak (e.g. ``vsock:``), which sd_notify ignores too.
    """
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of ``$WATCHDOG_USEC``), or None when no watchdog is
    asked of this process (unset, malformed, or ``$WATCHDOG_PID`` names another process)."""
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    watchdog_pid = environ.get("WATCHDOG_PID")
    if watchdog_pid is not None:
        try:
            if int(watchdog_pid) != pid:
                return None
        except ValueError:
            return None
    if usec <= 0:
        return None
    return usec / 2 / 1_000_000


def format_status(counts: Mapping[str, int], in_flight: int) -> str:
    """The STATUS= text, e.g. ``queue depth 3 (2 queued, 1 sending), 1 attempt in flight``."""
    queued, sending = counts.get("queued", 0), counts.get("sending", 0)
    attempts = "attempt" if in_flight == 1 else "attempts"
    return (f"queue depth {queued + sending} ({queued} queued, {sending} sending), "
            f"{in_flight} {attempts} in flight")


class Notifier:
    """Talks to the service manager over ``$NOTIFY_SOCKET``; every method is a no-op without one.

    Sends never block the event loop: the socket is non-blocking and a message the manager cannot
    take right now is dropped (the next STATUS= or WATCHDOG=1 follows shortly anyway).
    """

    def __init__(self, address: str | None, watchdog: float | None = None,
                 status_interval: float = STATUS_INTERVAL) -> None:
        self.address = address
        self.watchdog = watchdog if address else None
        self.status_interval = status_interval
        self.stopping_since: float | None = None
        self._sock: socket.socket | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None, pid: int | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        return cls(notify_address(env.get("NOTIFY_SOCKET")), watchdog_interval(env, pid or os.getpid()))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """Send one datagram of ``KEY=VALUE`` lines; True if the manager got it."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto("\n".join(fields).encode(), self.address)
        except OSError as exc:
            log.debug("sd_notify %s failed: %s", fields[0] if fields else "", exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def reloading(self) -> bool:
        # MONOTONIC_USEC lets systemd >= 253 (Type=notify-reload) match this to its reload job
        now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={now_usec}")

    def stopping(self) -> bool:
        """Say we are going down; STATUS= updates stop, WATCHDOG=1 pings go on until exit."""
        if self.stopping_since is None:
            self.stopping_since = time.monotonic()
        return self.send("STOPPING=1", "STATUS=stopping: finishing attempts in flight")

    def ping(self) -> bool:
        return self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def supervise(self, status: StatusSource) -> None:
        """READY=1 with the first STATUS=, then STATUS= every few seconds and WATCHDOG=1 pings.

        Run as a task on the daemon's loop from the moment it serves until it has stopped;
        cancel it to end. A STATUS= query that fails is skipped, never fatal.
        """
        if not self.enabled:
            return
        self.ready(await _safe_status(status))
        if self.watchdog:
            log.info("systemd watchdog: pinging every %.1f s", self.watchdog)
        try:
            await asyncio.gather(self._status_loop(status), self._watchdog_loop())
        finally:
            self.close()

    async def _status_loop(self, status: StatusSource) -> None:
        while True:
            await asyncio.sleep(self.status_interval)
            if self.stopping_since is None and (text := await _safe_status(status)):
                self.status(text)

    async def _watchdog_loop(self) -> None:
        if not self.watchdog:
            return
        while True:
            self.ping()
            await asyncio.sleep(self.watchdog)


async def _safe_status(status: StatusSource) -> str | None:
    try:
        return await status()
    except Exception as exc:  # STATUS= is informational: a busy database must not stop the pings
        log.debug("STATUS= query failed: %s", exc)
        return None


# -- socket activation --------------------------------------------------------------------------

def listen_fds(environ: MutableMapping[str, str] | None = None, pid: int | None = None) -> list[int]:
    """The file descriptors systemd passed us (``$LISTEN_FDS`` from fd 3 on), like sd_listen_fds(1).

    Only when ``$LISTEN_PID`` is this process; the variables are removed either way so a child
    never mistakes them for its own. The fds are made close-on-exec.
    """
    env = os.environ if environ is None else environ
    try:
        listen_pid, count = int(env.get("LISTEN_PID", "")), int(env.get("LISTEN_FDS", ""))
    except ValueError:
        return []
    finally:
        for name in LISTEN_VARIABLES:
            env.pop(name, None)
    if listen_pid != (pid or os.getpid()) or count < 1:
        return []
    fds = list(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count))
    for fd in fds:
        os.set_inheritable(fd, False)
    return fds


def listen_socket(
    environ: MutableMapping[str, str] | None = None, pid: int | None = None
) -> socket.socket | None:
    """The listening Unix socket passed by a ``.socket`` unit, or None to bind our own.

    Raises FnotifyError when what was passed is not a listening ``AF_UNIX`` stream socket.
    """
    fds = listen_fds(environ, pid)
    if not fds:
        return None
    for extra in fds[1:]:  # one ListenStream= is all we serve: do not hold the others open
        log.warning("socket activation: ignoring extra fd %d (only one ListenStream= is served)", extra)
        os.close(extra)
    try:
        if not stat.S_ISSOCK(os.fstat(fds[0]).st_mode):
            raise FnotifyError(f"socket activation: fd {fds[0]} is not a socket")
        sock = socket.socket(fileno=fds[0])
    except OSError as exc:
        raise FnotifyError(f"socket activation: fd {fds[0]}: {exc.strerror}") from None
    listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM or not listening:
        sock.detach()
        raise FnotifyError(f"socket activation: fd {fds[0]} is not a listening Unix stream socket; "
                           "check ListenStream= in failover-notify.socket")
    log.info("socket activation: serving on %s (fd %d from systemd)", sock.getsockname() or "?", fds[0])
    return sock


# -- credentials --------------------------------------------------------------------------------

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
