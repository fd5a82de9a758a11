"""An async client for the daemon's Unix socket, used by the CLI, the TUI and the tests.

``call`` sends one request and returns its result. ``subscribe`` opens an event stream on a
connection of its own and returns only once the daemon has acknowledged it, so every event
published after it returns is seen:

    async with client.subscribe(["notification.status"]) as stream:
        current = await client.call("show", id=17)   # nothing after this read can be missed
        async for event in stream:
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Generator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from daemon import protocol
from daemon.protocol import ClientError, DaemonUnavailable, RemoteError, remote_error

__all__ = ["ClientError", "DaemonClient", "DaemonUnavailable", "EventStream", "RemoteError"]


class DaemonClient:
    def __init__(self, path: Path | str, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()

    async def connect(self) -> DaemonClient:
        self._reader, self._writer = await _open(self.path, self.timeout)
        return self

    async def close(self) -> None:
        if self._writer is not None:
            await _close(self._writer)
            self._writer = self._reader = None

    async def __aenter__(self) -> DaemonClient:
        return await self.connect()

    async def __aexit__(self, *exc: object | TracebackType) -> None:
        await self.close()

    async def call(self, op: str, **params: Any) -> Any:
        """Send one request and return its result (typed in ``daemon.protocol``), or raise RemoteError."""
        async with self._lock:
            reply = await self._exchange(op, params)
            if not reply["ok"] and reply["id"] is None and reply["error"]["code"] == "idle":
                # the daemon hung up on this connection for idling before reading the request:
                # nothing was done, so the request is simply sent again on a new connection
                await self.close()
                reply = await self._exchange(op, params)
        if reply["ok"]:
            return reply["result"]
        raise remote_error(reply["error"])

    def subscribe(self, events: Sequence[str] | None = None) -> Subscribing:
        """Live events (all, or only the kinds in ``events``) on a new connection of their own; this
        client stays free for calls. Use ``async with client.subscribe() as stream`` (closes it) or
        ``stream = await client.subscribe()``; either way the daemon's acknowledgement has been read
        before the stream is handed over, so no event published after that can be missed."""
        return Subscribing(self.path, self.timeout, list(events or ()))

    async def _exchange(self, op: str, params: dict[str, Any]) -> protocol.Reply:
        reused = self._writer is not None
        if self._writer is None or self._reader is None:
            await self.connect()
        assert self._writer is not None and self._reader is not None
        request: protocol.RequestJSON = {"id": next(self._ids), "op": op, "params": params}
        try:
            self._writer.write(protocol.encode(request))
            await self._writer.drain()
        except ConnectionError:
            await self.close()
            if not reused:
                raise DaemonUnavailable(self.path, "connection lost while sending") from None
            # a Unix socket write fails only when the daemon had already closed this (idle)
            # connection: the request never reached it, so it is sent again on a new one
            return await self._exchange(op, params)
        try:
            line = await asyncio.wait_for(self._reader.readline(), self.timeout)
        except (ConnectionError, TimeoutError) as exc:
            await self.close()
            raise DaemonUnavailable(self.path, f"connection lost ({type(exc).__name__})") from None
        if not line:
            await self.close()
            raise DaemonUnavailable(self.path, "the daemon closed the connection")
        try:
            return protocol.decode_reply(line)
        except protocol.ProtocolError as exc:  # a reply cut short by a dying daemon
            await self.close()
            raise DaemonUnavailable(self.path, f"unreadable reply ({exc})") from None


class Subscribing:
    """What ``DaemonClient.subscribe`` returns: await it for an ``EventStream``, or use it as an async
    context manager that closes the stream on exit."""

    def __init__(self, path: Path, timeout: float, events: list[str]) -> None:
        self._path, self._timeout, self._events = path, timeout, events
        self._stream: EventStream | None = None

    async def _open(self) -> EventStream:
        reader, writer = await _open(self._path, self._timeout)
        stream = EventStream(self._path, reader, writer)
        try:
            await stream._handshake(self._events, self._timeout)
        except BaseException:
            await stream.close()
            raise
        return stream

    def __await__(self) -> Generator[Any, None, EventStream]:
        return self._open().__await__()

    async def __aenter__(self) -> EventStream:
        self._stream = await self._open()
        return self._stream

    async def __aexit__(self, *exc: object | TracebackType) -> None:
        if self._stream is not None:
            await self._stream.close()


class EventStream:
    """An acknowledged ``subscribe`` stream: iterate it for ``protocol.Event``s. It ends (the loop
    stops) when the daemon closes the stream: at shutdown, or after an ``overflow`` event."""

    def __init__(self, path: Path, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.path = path
        self._reader = reader
        self._writer: asyncio.StreamWriter | None = writer

    async def _handshake(self, events: list[str], timeout: float) -> None:
        assert self._writer is not None
        request: protocol.RequestJSON = {"id": 0, "op": "subscribe", "params": {"events": events} if events else {}}
        try:
            self._writer.write(protocol.encode(request))
            await self._writer.drain()
            line = await asyncio.wait_for(self._reader.readline(), timeout)
        except (ConnectionError, TimeoutError) as exc:
            raise DaemonUnavailable(self.path, f"connection lost ({type(exc).__name__})") from None
        if not line:
            raise DaemonUnavailable(self.path, "the daemon closed the connection")
        try:
            reply = protocol.decode_reply(line)
        except protocol.ProtocolError as exc:
            raise DaemonUnavailable(self.path, f"unreadable reply ({exc})") from None
        if not reply["ok"]:
            raise remote_error(reply["error"])

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> protocol.Event:
        if self._writer is None:
            raise StopAsyncIteration
        try:
            line = await self._reader.readline()
        except (ConnectionError, ValueError) as exc:  # reset, or a line over the reader's limit
            await self.close()
            raise DaemonUnavailable(self.path, f"event stream lost ({type(exc).__name__})") from None
        if not line:
            await self.close()
            raise StopAsyncIteration
        try:
            return protocol.decode_event(line)
        except protocol.ProtocolError as exc:
            await self.close()
            raise DaemonUnavailable(self.path, f"unreadable event ({exc})") from None

    async def close(self) -> None:
        """End the stream (the daemon sees EOF and unsubscribes); safe to call twice."""
        writer, self._writer = self._writer, None
        if writer is not None:
            await _close(writer)

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc: object | TracebackType) -> None:
        await self.close()


async def _open(path: Path, timeout: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        return await asyncio.wait_for(
            asyncio.open_unix_connection(str(path), limit=protocol.MAX_LINE * 4), timeout
        )
    except FileNotFoundError:
        raise DaemonUnavailable(path, "no such socket") from None
    except ConnectionRefusedError:
        raise DaemonUnavailable(path, "connection refused") from None
    except PermissionError:
        raise DaemonUnavailable(path, "permission denied (are you in the daemon's group?)") from None
    except (OSError, TimeoutError) as exc:
        raise DaemonUnavailable(path, str(exc) or type(exc).__name__) from None


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()
