"""A blocking client for the daemon's Unix socket: what the ``fnotify`` command uses.

A client command makes one or two requests and exits, and scripts run it once per alert. It speaks
the same protocol as ``daemon.client.DaemonClient`` (the TUI's) over a plain socket, so the command
does not import asyncio, which costs more than everything else the command does. The errors are the
protocol's (``DaemonUnavailable``, ``RemoteError``), as with the async client.

    with BlockingClient(path) as client:
        with client.subscribe(["notification.status"], timeout=60) as events:
            current = client.call("show", id=17)   # nothing after this read can be missed
            for event in events:
                ...
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from collections.abc import Iterator, Sequence
from types import TracebackType

from daemon import protocol
from daemon.protocol import DaemonUnavailable, remote_error

TYPE_CHECKING = False  # typing is for mypy only: a CLI process does not import it (~3 ms; issue 14)
if TYPE_CHECKING:
    from typing import Any, BinaryIO

READ_LIMIT = protocol.MAX_LINE * 4  # a reply (a long list) may be larger than a request


class BlockingClient:
    def __init__(self, path: str | os.PathLike[str], timeout: float = 30.0) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout
        self._conn: _Connection | None = None
        self._ids = itertools.count(1)

    def __enter__(self) -> BlockingClient:
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def call(self, op: str, **params: Any) -> Any:
        """Send one request and return its result (typed in ``daemon.protocol``), or raise RemoteError."""
        reply = self._exchange(op, params)
        if not reply["ok"] and reply["id"] is None and reply["error"]["code"] == "idle":
            # the daemon hung up on this connection for idling before reading the request:
            # nothing was done, so the request is simply sent again on a new connection
            self.close()
            reply = self._exchange(op, params)
        if reply["ok"]:
            return reply["result"]
        raise remote_error(reply["error"])

    def subscribe(self, events: Sequence[str] | None = None, *, timeout: float | None = None) -> EventStream:
        """Live events on a connection of their own, returned once the daemon has acknowledged the
        subscription (no event published after this returns can be missed). Iterating raises
        TimeoutError when ``timeout`` seconds (from now) pass first; None waits for ever."""
        conn = _Connection.open(self.path, self.timeout)
        try:
            request: protocol.RequestJSON = {"id": 0, "op": "subscribe",
                                             "params": {"events": list(events)} if events else {}}
            conn.send(protocol.encode(request))
            reply = protocol.decode_reply(conn.read_line(self.timeout) or b"")
        except TimeoutError:
            conn.close()
            raise DaemonUnavailable(self.path, "connection lost (TimeoutError)") from None
        except protocol.ProtocolError as exc:
            conn.close()
            raise DaemonUnavailable(self.path, f"unreadable reply ({exc})") from None
        except BaseException:
            conn.close()
            raise
        if not reply["ok"]:
            conn.close()
            raise remote_error(reply["error"])
        return EventStream(conn, None if timeout is None else time.monotonic() + timeout)

    def _exchange(self, op: str, params: dict[str, Any]) -> protocol.Reply:
        reused = self._conn is not None
        if self._conn is None:
            self._conn = _Connection.open(self.path, self.timeout)
        request: protocol.RequestJSON = {"id": next(self._ids), "op": op, "params": params}
        try:
            self._conn.send(protocol.encode(request))
        except DaemonUnavailable:
            self.close()
            if not reused:
                raise
            # a write fails only when the daemon had already closed this (idle) connection: the
            # request never reached it, so it is sent again on a new one
            return self._exchange(op, params)
        try:
            line = self._conn.read_line(self.timeout)
        except TimeoutError:
            self.close()
            raise DaemonUnavailable(self.path, "connection lost (TimeoutError)") from None
        except DaemonUnavailable:
            self.close()
            raise
        if not line:
            self.close()
            raise DaemonUnavailable(self.path, "the daemon closed the connection")
        try:
            return protocol.decode_reply(line)
        except protocol.ProtocolError as exc:  # a reply cut short by a dying daemon
            self.close()
            raise DaemonUnavailable(self.path, f"unreadable reply ({exc})") from None


class EventStream:
    """An acknowledged ``subscribe`` stream: iterate it for ``protocol.Event``s; it ends when the daemon
    closes the stream (at shutdown, or after an ``overflow`` event). Close it (or use ``with``)."""

    def __init__(self, conn: _Connection, deadline: float | None) -> None:
        self._conn: _Connection | None = conn
        self._deadline = deadline

    def __iter__(self) -> Iterator[protocol.Event]:
        while self._conn is not None:
            wait = None if self._deadline is None else self._deadline - time.monotonic()
            if wait is not None and wait <= 0:
                raise TimeoutError
            line = self._conn.read_line(wait)
            if not line:
                self.close()
                return
            try:
                yield protocol.decode_event(line)
            except protocol.ProtocolError as exc:
                path = self._conn.path
                self.close()
                raise DaemonUnavailable(path, f"unreadable event ({exc})") from None

    def close(self) -> None:
        """End the stream (the daemon sees EOF and unsubscribes); safe to call twice."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.close()


class _Connection:
    """One Unix stream socket and a buffered reader on it; OS errors become DaemonUnavailable."""

    def __init__(self, path: str, sock: socket.socket) -> None:
        self.path = path
        self._sock = sock
        self._file: BinaryIO = sock.makefile("rb")

    @classmethod
    def open(cls, path: str, timeout: float) -> _Connection:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except FileNotFoundError:
            reason = "no such socket"
        except ConnectionRefusedError:
            reason = "connection refused"
        except PermissionError:
            reason = "permission denied (are you in the daemon's group?)"
        except (OSError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
        else:
            return cls(path, sock)
        sock.close()
        raise DaemonUnavailable(path, reason)

    def send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:  # BrokenPipe, reset, timeout
            raise DaemonUnavailable(self.path, f"connection lost while sending ({type(exc).__name__})") from None

    def read_line(self, timeout: float | None) -> bytes:
        """One line (b"" at EOF); TimeoutError after ``timeout`` seconds (None: no limit)."""
        self._sock.settimeout(timeout)
        try:
            line = self._file.readline(READ_LIMIT)
        except TimeoutError:
            raise
        except OSError as exc:
            raise DaemonUnavailable(self.path, f"connection lost ({type(exc).__name__})") from None
        if line and not line.endswith(b"\n"):
            raise DaemonUnavailable(self.path, f"a reply longer than {READ_LIMIT} bytes")
        return line

    def close(self) -> None:
        self._file.close()
        self._sock.close()
