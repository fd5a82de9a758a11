"""Hardening shared by the daemon's HTTP listeners (the API, the Telegram webhook; a metrics endpoint
can use it too): a cap on open connections, deadlines for each request's header and body, and a
bad request logged as one line instead of a traceback.

aiohttp accepts every connection it is offered and waits for a request header as long as its
keep-alive timeout (an hour), so a thousand clients that each send half a header hold a thousand
file descriptors; at the process's limit the Unix socket API stops answering too. ``Listener``
serves an ``aiohttp.web.Application`` on host:port within ``ListenerLimits``:

- ``max_connections``: at the cap, the connection idle longest (no request in progress: it has not
  finished a header, or waits kept alive between requests) is closed to make room; when every
  connection has a request in progress, the newcomer is answered 503 and closed;
- ``header_timeout``: a connection without a complete request header this long after it opened, or
  after its previous request, is closed;
- ``body_timeout``: a request whose body has not all arrived this long after its header is cut off.

Each kind of closure is logged once, then counted (``daemon.logs.LogThrottle``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

from daemon.api.resources import ListenerLimits
from daemon.core.logsafe import LogThrottle, printable

__all__ = ["Listener", "ListenerLimits"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_BUSY_BODY = json.dumps({"error": "too many connections; try again"}).encode()
BUSY_REPLY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
              b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY))


class Listener:
    """``app`` served on ``host:port`` within ``limits``. Its middleware goes first in ``app``'s list,
    so construct the listener before the app starts (``start()`` freezes it)."""

    def __init__(self, app: web.Application, host: str, port: int, limits: ListenerLimits, *, name: str,
                 shutdown_timeout: float = 10.0) -> None:
        self.name = name
        self.limits = limits
        self._host, self._port = host, port
        self._throttle = LogThrottle(log)
        self._guard: _Guard | None = None
        self._server: asyncio.Server | None = None

        @web.middleware
        async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
            if self._guard is None:
                return await handler(request)
            return await self._guard.serve(request, handler)

        app.middlewares.insert(0, guard)
        # aiohttp's own idle timeout after a request matches ours (its default is an hour)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout,
                                     keepalive_timeout=limits.header_timeout,
                                     logger=_RequestErrorLog(name, self._throttle))

    async def start(self, sock: socket.socket | None = None) -> None:
        """Listen (on ``sock`` when given: bound earlier, it takes the place of host and port); an
        ``OSError`` (address in use, say) leaves nothing behind."""
        await self._runner.setup()
        assert self._runner.server is not None
        self._guard = _Guard(self._runner.server, self.limits, self.name, self._throttle)
        loop = asyncio.get_running_loop()
        try:
            if sock is not None:
                self._server = await loop.create_server(self._guard, sock=sock, backlog=128)
            else:
                self._server = await loop.create_server(self._guard, self._host, self._port, backlog=128)
        except OSError:
            self._guard = None
            await self._runner.cleanup()
            raise

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) bound (port 0 in the config picks a free one); only while started."""
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """``http://host:port`` of the bound address (IPv6 in brackets); only while started."""
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def open_connections(self) -> int:
        """Connections open now (for tests and, later, metrics)."""
        return len(self._guard.connections) if self._guard is not None else 0

    @property
    def idle_connections(self) -> int:
        """Of those, the ones without a request in progress."""
        return len(self._guard.idle) if self._guard is not None else 0

    async def stop(self) -> None:
        """Take no new connections, let requests in flight finish (``shutdown_timeout``), close the rest."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        await self._runner.cleanup()
        if self._guard is not None:
            self._guard.close()
        self._throttle.close()
        await server.wait_closed()


class _Connection(asyncio.Protocol):
    """One accepted connection: everything passes to aiohttp's protocol (``inner``); the guard keeps
    count of it and may close it."""

    def __init__(self, guard: _Guard, inner: RequestHandler) -> None:
        self.guard = guard
        self.inner = inner
        self.transport: asyncio.Transport | None = None
        self.deadline: asyncio.TimerHandle | None = None
        self.cut_off = False  # the guard closed it in the middle of a request's body

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> None:
        self.inner.eof_received()  # None: the transport closes

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.forget(self)
        self.inner.connection_lost(exc)

    def peer(self) -> str:
        peer = self.transport.get_extra_info("peername") if self.transport is not None else None
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "unknown peer"


class _Busy(asyncio.Protocol):
    """A connection over the cap with none to make room: 503, closed at once (no descriptor held)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(BUSY_REPLY)
        transport.close()


class _Guard:
    """The listening socket's protocol factory, and the middleware's state for each connection."""

    def __init__(self, server: web.Server, limits: ListenerLimits, name: str, throttle: LogThrottle) -> None:
        self.server = server
        self.limits = limits
        self.name = name
        self.throttle = throttle
        self.loop = asyncio.get_running_loop()
        self.connections: dict[RequestHandler, _Connection] = {}
        self.idle: dict[_Connection, None] = {}  # no request in progress; idle longest first

    def __call__(self) -> asyncio.Protocol:
        if len(self.connections) >= self.limits.max_connections and not self._close_idlest():
            self.throttle.log(logging.WARNING, f"{self.name}: {self.limits.max_connections} connections, each "
                              "with a request in progress: a new one was refused (503)")
            return _Busy()
        conn = _Connection(self, self.server())
        self.connections[conn.inner] = conn
        self._wait_for_header(conn)
        return conn

    async def serve(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """The middleware: a header arrived; bound the body's arrival; afterwards wait for the next header."""
        conn = self.connections.get(request.protocol)
        if conn is None:  # closed by the guard meanwhile
            return await handler(request)
        self._stop_waiting(conn)
        body_deadline = None
        if request.body_exists and not request.content.is_eof():
            body_deadline = self.loop.call_later(self.limits.body_timeout, self._body_late, conn, request)
        try:
            return await handler(request)
        except ConnectionError:
            if request.transport is not None and not request.transport.is_closing():
                raise  # not this client's connection: a real failure, for the app's error handling
            # the client went (or was cut off): no one to answer; aiohttp drops this reply quietly
            return web.Response(status=408 if conn.cut_off else 400)
        finally:
            if body_deadline is not None:
                body_deadline.cancel()
            if request.protocol in self.connections:
                self._wait_for_header(conn)

    def forget(self, conn: _Connection) -> None:
        self.connections.pop(conn.inner, None)
        self._stop_waiting(conn)

    def close(self) -> None:
        for conn in list(self.connections.values()):
            self.forget(conn)

    def _wait_for_header(self, conn: _Connection) -> None:
        self._stop_waiting(conn)
        self.idle[conn] = None
        conn.deadline = self.loop.call_later(self.limits.header_timeout, self._header_late, conn)

    def _stop_waiting(self, conn: _Connection) -> None:
        self.idle.pop(conn, None)
        if conn.deadline is not None:
            conn.deadline.cancel()
            conn.deadline = None

    def _close_idlest(self) -> bool:
        for conn in self.idle:
            if conn.transport is not None:  # one just accepted may not be connected yet
                self.throttle.log(logging.WARNING, f"{self.name}: at {self.limits.max_connections} connections: "
                                  "closed the one idle longest to make room", f" ({conn.peer()})")
                self._close(conn)
                return True
        return False

    def _header_late(self, conn: _Connection) -> None:
        conn.deadline = None
        if conn in self.idle:
            self.throttle.log(logging.INFO, f"{self.name}: closed a connection without a complete request "
                              f"header within {self.limits.header_timeout:g} s", f" ({conn.peer()})")
            self._close(conn)

    def _body_late(self, conn: _Connection, request: web.Request) -> None:
        if request.content.is_eof() or request.protocol not in self.connections:
            return  # the body is all in: the handler is merely busy
        self.throttle.log(logging.INFO, f"{self.name}: closed a connection whose request body did not arrive "
                          f"within {self.limits.body_timeout:g} s", f" ({conn.peer()})")
        conn.cut_off = True
        self._close(conn)

    def _close(self, conn: _Connection) -> None:
        self.forget(conn)  # counted out now, not when the transport's connection_lost comes
        conn.inner.force_close()


class _RequestErrorLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server log, given to its protocol: a malformed or oversized request (the client's fault)
    becomes one throttled warning line instead of an error with a traceback."""

    def __init__(self, name: str, throttle: LogThrottle) -> None:
        super().__init__(logging.getLogger("aiohttp.server"), {})
        self.listener = name
        self.throttle = throttle

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        if level >= logging.WARNING and isinstance(exc, HttpProcessingError):
            remote = args[0] if args else "unknown peer"
            reason = printable(exc.message or type(exc).__name__)
            self.throttle.log(logging.WARNING, f"{self.listener}: refused a malformed or oversized request (400)",
                              f" from {remote}: {reason}")
            return
        super().log(level, msg, *args, **kwargs)
