"""An async client for the daemon's Unix socket, used by the CLI, the TUI and the tests."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any

from daemon import protocol


class ClientError(Exception):
    """Root of the client's errors."""


class DaemonUnavailable(ClientError):
    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"cannot reach the daemon at {path}: {reason}. Is it running? Start it with `fnotify run`."
        )
        self.path = path


class RemoteError(ClientError):
    """The daemon refused the request; ``code`` and ``field`` say why."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


class DaemonClient:
    def __init__(self, path: Path | str, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()

    async def connect(self) -> DaemonClient:
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(self.path), limit=protocol.MAX_LINE * 4), self.timeout
            )
        except FileNotFoundError:
            raise DaemonUnavailable(self.path, "no such socket") from None
        except ConnectionRefusedError:
            raise DaemonUnavailable(self.path, "connection refused") from None
        except PermissionError:
            raise DaemonUnavailable(self.path, "permission denied (are you in the daemon's group?)") from None
        except (OSError, TimeoutError) as exc:
            raise DaemonUnavailable(self.path, str(exc) or type(exc).__name__) from None
        return self

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
            self._writer = self._reader = None

    async def __aenter__(self) -> DaemonClient:
        return await self.connect()

    async def __aexit__(self, *exc: object | TracebackType) -> None:
        await self.close()

    async def call(self, op: str, **params: Any) -> Any:
        """Send one request and return its result, or raise RemoteError."""
        async with self._lock:
            reply = await self._exchange(op, params)
            if reply.get("id") is None and (reply.get("error") or {}).get("code") == "idle":
                # the daemon hung up on this connection for idling before reading the request:
                # nothing was done, so the request is simply sent again on a new connection
                await self.close()
                reply = await self._exchange(op, params)
        if reply.get("ok"):
            return reply.get("result")
        err = reply.get("error") or {}
        raise RemoteError(err.get("code", "error"), err.get("message", "unknown error"), err.get("field"))

    async def _exchange(self, op: str, params: dict[str, Any]) -> dict[str, Any]:
        reused = self._writer is not None
        if self._writer is None or self._reader is None:
            await self.connect()
        assert self._writer is not None and self._reader is not None
        request_id = next(self._ids)
        try:
            self._writer.write(protocol.encode({"id": request_id, "op": op, "params": params}))
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
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def subscribe(self, events: list[str] | None = None) -> AsyncIterator[dict[str, Any]]:
        """Stream live events on this connection (it is then used for nothing else)."""
        if self._writer is None:
            await self.connect()
        assert self._writer is not None and self._reader is not None
        params = {"events": events} if events else {}
        self._writer.write(protocol.encode({"id": 0, "op": "subscribe", "params": params}))
        await self._writer.drain()
        first = json.loads(await self._reader.readline() or b"{}")
        if not first.get("ok"):
            err = first.get("error") or {}
            raise RemoteError(err.get("code", "error"), err.get("message", "subscribe refused"), err.get("field"))
        while line := await self._reader.readline():
            yield json.loads(line)
