"""The TUI's link to the daemon: request/reply calls and the live event stream.

Calls open a short connection each (``DaemonClient`` per call), so a cancelled Textual worker can
never leave a half-read reply on a shared stream. The event stream is one long connection that
``DaemonConnection.run_event_stream`` keeps open, reconnecting with exponential backoff, and
reports as typed Textual messages posted to the app:

    Connected      the stream is live (re-read your data now: nothing after this is missed)
    Disconnected   the daemon is not reachable; ``reason`` says why; retrying
    DaemonEvent    one event from the stream (``kind``, ``at``, ``data``)
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from textual.message import Message
from textual.message_pump import MessagePump

from daemon import protocol
from daemon.client import DaemonClient, DaemonUnavailable, RemoteError

log = logging.getLogger(__name__)


class Connected(Message, bubble=False):
    """The event stream is live."""


class Disconnected(Message, bubble=False):
    """The daemon could not be reached; the connection keeps retrying."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class DaemonEvent(Message, bubble=False):
    """One event of the daemon's ``subscribe`` stream."""

    def __init__(self, kind: str, at: str | None, data: dict[str, Any]) -> None:
        super().__init__()
        self.kind = kind
        self.at = at
        self.data = data

    def copy(self) -> DaemonEvent:
        """A fresh message for another recipient (a Message is delivered once)."""
        return DaemonEvent(self.kind, self.at, self.data)


class _EventStreamClient(DaemonClient):
    """``DaemonClient.subscribe`` swallows the acknowledgement; the TUI needs to know when the
    stream is live, so that a re-read after ``Connected`` cannot miss an event."""

    async def open_stream(self) -> None:
        await self.connect()
        assert self._writer is not None and self._reader is not None
        self._writer.write(protocol.encode({"id": 0, "op": "subscribe", "params": {}}))
        await self._writer.drain()
        reply = json.loads(await self._reader.readline() or b"{}")
        if not reply.get("ok"):
            err = reply.get("error") or {}
            raise RemoteError(err.get("code", "error"), err.get("message", "subscribe refused"),
                              err.get("field"))

    async def next_event(self) -> dict[str, Any] | None:
        """The next event, or None when the daemon ended the stream."""
        assert self._reader is not None
        line = await self._reader.readline()
        return json.loads(line) if line else None


def short_reason(exc: BaseException, path: Path) -> str:
    """``connection refused`` rather than the CLI's full sentence about starting the daemon."""
    text = str(exc)
    prefix = f"cannot reach the daemon at {path}: "
    if text.startswith(prefix):
        text = text[len(prefix):].split(". Is it running?")[0]
    return text or type(exc).__name__


class DaemonConnection:
    def __init__(self, socket_path: Path | str, target: MessagePump, *, timeout: float = 10.0,
                 retry_initial: float = 0.25, retry_max: float = 5.0) -> None:
        self.socket_path = Path(socket_path)
        self.target = target
        self.timeout = timeout
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.connected = False
        self._last_reason: str | None = None

    async def call(self, op: str, **params: Any) -> Any:
        """One request on its own connection; raises DaemonUnavailable or RemoteError."""
        try:
            async with DaemonClient(self.socket_path, timeout=self.timeout) as client:
                return await client.call(op, **params)
        except (OSError, ValueError) as exc:  # a reply cut short or garbled by a dying daemon
            raise DaemonUnavailable(self.socket_path, f"connection lost ({type(exc).__name__})") from None

    async def run_event_stream(self) -> None:
        """Keep the event stream open forever (run it in a worker; cancel it to stop)."""
        delay = self.retry_initial
        while True:
            stream = _EventStreamClient(self.socket_path, timeout=self.timeout)
            try:
                await stream.open_stream()
            except (DaemonUnavailable, RemoteError, OSError, ValueError) as exc:
                await stream.close()
                self._report_down(short_reason(exc, self.socket_path))
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)
                continue
            delay = self.retry_initial
            self.connected = True
            self.target.post_message(Connected())
            try:
                await self._pump(stream)
            finally:
                await stream.close()
            log.info("event stream ended; reconnecting")

    async def _pump(self, stream: _EventStreamClient) -> None:
        while True:
            try:
                event = await stream.next_event()
            except (OSError, ValueError):
                return
            if event is None:
                return
            if not isinstance(event.get("event"), str):
                continue
            self.target.post_message(DaemonEvent(event["event"], event.get("at"), event.get("data") or {}))

    def _report_down(self, reason: str) -> None:
        """Say so once per outage (and when the reason changes), not at every retry."""
        if self.connected or self._last_reason != reason:
            self.target.post_message(Disconnected(reason))
        self._last_reason = reason
        self.connected = False
