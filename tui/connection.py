"""The TUI's link to the daemon: request/reply calls and the live event stream.

Calls open a short connection each (``DaemonClient`` per call), so a cancelled Textual worker can
never leave a half-read reply on a shared stream. The event stream is one long connection that
``DaemonConnection.run_event_stream`` keeps open, reconnecting with exponential backoff, and
reports as typed Textual messages posted to the app:

    Connected      the stream is live (re-read your data now: nothing after this is missed)
    Disconnected   the daemon is not reachable; ``reason`` says why; retrying
    DaemonEvent    one event from the stream (``event``, a ``daemon.protocol.Event``)
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from textual.message import Message
from textual.message_pump import MessagePump

from daemon import protocol
from daemon.client import ClientError, DaemonClient, DaemonUnavailable, EventStream

log = logging.getLogger(__name__)


class Connected(Message, bubble=False):
    """The event stream is live."""


class Disconnected(Message, bubble=False):
    """The daemon could not be reached; the connection keeps retrying."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class DaemonEvent(Message, bubble=False):
    """One event of the daemon's ``subscribe`` stream; ``event`` is typed by its kind (narrow on
    ``event["event"]`` to read ``event["data"]``)."""

    def __init__(self, event: protocol.Event) -> None:
        super().__init__()
        self.event = event

    @property
    def kind(self) -> str:
        return self.event["event"]

    def copy(self) -> DaemonEvent:
        """A fresh message for another recipient (a Message is delivered once)."""
        return DaemonEvent(self.event)


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
            try:
                # acknowledged by the daemon before it returns: Connected means nothing later is missed
                stream = await DaemonClient(self.socket_path, timeout=self.timeout).subscribe()
            except (ClientError, OSError) as exc:
                self._report_down(short_reason(exc, self.socket_path))
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)
                continue
            delay = self.retry_initial
            self.connected = True
            self.target.post_message(Connected())
            async with stream:
                await self._pump(stream)
            log.info("event stream ended; reconnecting")

    async def _pump(self, stream: EventStream) -> None:
        try:
            async for event in stream:
                self.target.post_message(DaemonEvent(event))
        except (ClientError, OSError):  # the daemon went away mid-stream: reconnect
            return

    def _report_down(self, reason: str) -> None:
        """Say so once per outage (and when the reason changes), not at every retry."""
        if self.connected or self._last_reason != reason:
            self.target.post_message(Disconnected(reason))
        self._last_reason = reason
        self.connected = False
