"""The enqueue load's client: one connection per client, closed loop, as a bare ``asyncio.Protocol``.

The client runs on the same two cores as the daemon, so its CPU per request is part of what limits
the enqueue figure. It stays honest: every client is a connection of its own with one request in
flight (the next line is written only once the reply to the last has been read), every reply is
parsed and checked (``ok``, the request's own ``id``, a notification id in the result), and the
latency of each request is taken from its write to its reply. What it leaves out is machinery: the
request lines are encoded before the clock starts, and the reply is handled in ``data_received``
itself instead of waking a coroutine (``DaemonClient.call`` cost ~160 us of CPU per request, plain
streams ~75-120 us).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any


class ClosedLoop(asyncio.Protocol):
    """Writes ``lines`` one at a time, each once the previous reply is in; ``done`` ends with the run."""

    def __init__(self, lines: list[bytes], latencies: list[float], interval: float | None, start: float) -> None:
        self._lines = lines
        self._latencies = latencies
        self._interval = interval  # offered load: line i is due at start + i * interval
        self._start = start
        self._next = 0
        self._began = 0.0
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._send_next()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._buffer.endswith(b"\n"):  # one reply in flight: a line is complete when the data ends it
            return
        now = time.perf_counter()
        reply, self._buffer = self._buffer, b""
        try:
            check(json.loads(reply), self._next)
        except (RuntimeError, ValueError) as exc:
            self._finish(exc)
            return
        self._latencies.append(now - self._began)
        self._next += 1
        self._send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(ConnectionError(f"connection lost after {self._next} of {len(self._lines)} sends ({exc})"))

    def _send_next(self) -> None:
        if self._next == len(self._lines):
            self._finish(None)
            return
        if self._interval is not None:
            due = self._start + self._next * self._interval
            if due > time.perf_counter():
                asyncio.get_running_loop().call_later(due - time.perf_counter(), self._write)
                return
        self._write()

    def _write(self) -> None:
        assert self._transport is not None
        self._began = time.perf_counter()
        self._transport.write(self._lines[self._next])

    def _finish(self, error: Exception | None) -> None:
        if self.done.done():
            return
        if error is None:
            self.done.set_result(None)
        else:
            self.done.set_exception(error)
        if self._transport is not None:
            self._transport.close()


def check(reply: Any, request_id: int) -> None:
    """A send's reply: acknowledged, to this request, with the new notification's (or batch's) id."""
    if not isinstance(reply, dict) or reply.get("id") != request_id or reply.get("ok") is not True:
        raise RuntimeError(f"send {request_id} not acknowledged: {reply!r}")
    result = reply.get("result")
    if not isinstance(result, dict) or not isinstance(result.get("id") or result.get("batch_id"), int):
        raise RuntimeError(f"send {request_id}: no notification id in the reply: {reply!r}")


async def run_clients(socket: str, lines: list[list[bytes]], rate: float | None) -> tuple[list[float], float]:
    """Each list of ``lines`` sent by a client of its own; the latencies and the seconds it all took."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    interval = None if rate is None else len(lines) / rate  # each client's own schedule
    start = time.perf_counter()
    clients = [ClosedLoop(mine, latencies, interval, start) for mine in lines]
    for client in clients:
        await loop.create_unix_connection(lambda client=client: client, socket)  # type: ignore[misc]
    await asyncio.gather(*(client.done for client in clients))
    return latencies, time.perf_counter() - start
