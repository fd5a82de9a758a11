"""The Unix socket server: newline-delimited JSON requests, one reply per request, and the
``subscribe`` stream. Transport only: each op's params are validated with its request model
(``daemon.api.requests.REQUESTS``), then the op is one call into ``daemon.api.service``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from daemon import protocol
from daemon.api import wire
from daemon.api.idle import IdleTimeout, IdleWatch
from daemon.api.peercred import is_allowed, peer_of
from daemon.api.requests import REQUESTS, SendRequest, SubscribeRequest, parse
from daemon.api.service import Service
from daemon.api.service_groups import batch_reply
from daemon.core.errors import FnotifyError, StorageError, ValidationError

log = logging.getLogger(__name__)

SOCKET_MODE = 0o660
LINGER_SECONDS = 1.0  # how long a refused peer may keep sending before it is cut off
Handler = Callable[..., Awaitable[Any]]
"""An op: called with its validated request model, or with nothing when the op takes no params."""


def _render(value: Any) -> Any:
    if isinstance(value, list):
        return [_render(v) for v in value]
    to_json = getattr(value, "to_json", None)
    return to_json() if to_json else value


class SocketServer:
    def __init__(self, service: Service, path: Path, *, max_connections: int = 256,
                 idle_timeout: float = 300.0,
                 allowed_uids: tuple[int, ...] = (), allowed_gids: tuple[int, ...] = ()) -> None:
        self.service = service
        self.path = path
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.allowed_uids = allowed_uids
        self.allowed_gids = allowed_gids
        self._server: asyncio.Server | None = None
        self._owns_path = True
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._ops: dict[str, Handler] = {
            "ping": self._ping,
            "status": service.status,
            "health": service.health,
            "pause": service.pause,
            "resume": service.resume,
            "send": self._send,
            "show": service.show,
            "list": service.list_notifications,
            "cancel": service.cancel,
            "retry": service.retry,
            "recipient.add": service.add_recipient,
            "recipient.list": service.list_recipients,
            "recipient.show": service.show_recipient,
            "recipient.update": service.update_recipient,
            "recipient.remove": service.remove_recipient,
            "recipient.link": service.link_recipient,
            "group.add": service.add_group,
            "group.list": service.list_groups,
            "group.show": service.show_group,
            "group.update": service.update_group,
            "group.remove": service.remove_group,
            "batch.show": service.show_batch,
            "backup": service.backup,
        }

    async def start(self, sock: socket.socket | None = None) -> None:
        """Listen on ``sock`` (socket activation) or bind ``path`` with mode 0660."""
        self._owns_path = sock is None  # an activated socket's file belongs to the .socket unit
        if sock is not None:
            self._server = await asyncio.start_unix_server(self._handle, sock=sock, limit=protocol.MAX_LINE)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await self._remove_stale_socket()
        old_umask = os.umask(0o117)  # the file is born 0660: no window where it is world-writable
        try:
            self._server = await asyncio.start_unix_server(self._handle, path=str(self.path),
                                                           limit=protocol.MAX_LINE)
        finally:
            os.umask(old_umask)
        os.chmod(self.path, SOCKET_MODE)

    async def _remove_stale_socket(self) -> None:
        if not self.path.exists():
            return
        if not stat.S_ISSOCK(self.path.stat().st_mode):
            raise FnotifyError(f"{self.path} exists and is not a socket; refusing to replace it")
        try:
            _, writer = await asyncio.open_unix_connection(str(self.path))
        except (ConnectionRefusedError, FileNotFoundError):
            self.path.unlink(missing_ok=True)  # left behind by a daemon that died
            return
        writer.close()
        raise FnotifyError(f"another daemon is already listening on {self.path}")

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            # closing the transports ends each connection's read loop with EOF; cancelling the
            # handler tasks instead makes asyncio log their CancelledError as an error
            for writer in list(self._connections.values()):
                writer.close()
            if self._connections:
                await asyncio.wait(list(self._connections), timeout=2)
            await self._server.wait_closed()
            self._server = None
        if not self._owns_path:
            return
        with contextlib.suppress(FileNotFoundError):
            if self.path.exists() and stat.S_ISSOCK(self.path.stat().st_mode):
                self.path.unlink()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= self.max_connections:
            writer.write(wire.encode(protocol.error(None, "busy", "too many connections; try again")))
            await _linger_close(reader, writer)
            return
        if (refusal := self._refuse_peer(writer)) is not None:
            writer.write(wire.encode(protocol.error(None, "forbidden", refusal)))
            await _linger_close(reader, writer)
            return
        self._connections[task] = writer
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._connections.pop(task, None)
            await _close(writer)

    def _refuse_peer(self, writer: asyncio.StreamWriter) -> str | None:
        """Why this peer may not talk to the daemon (``[daemon] allowed_uids`` / ``allowed_gids``), or None."""
        if not self.allowed_uids and not self.allowed_gids:
            return None
        sock = writer.get_extra_info("socket")
        try:
            peer = peer_of(sock)
        except (OSError, AttributeError) as exc:  # no credentials: refuse rather than guess
            log.warning("socket peer credentials unavailable (%s): connection refused", exc)
            return "peer credentials unavailable; connection refused"
        if is_allowed(peer, self.allowed_uids, self.allowed_gids):
            return None
        log.warning("socket connection refused: uid %d gid %d (pid %d) is not in allowed_uids / allowed_gids",
                    peer.uid, peer.gid, peer.pid)
        return f"uid {peer.uid} is not allowed on this socket ([daemon] allowed_uids / allowed_gids)"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        watch = IdleWatch(self.idle_timeout)
        try:
            while True:
                try:
                    line = await watch.guard(reader.readline())
                except IdleTimeout:
                    writer.write(wire.encode(protocol.error(
                        None, "idle", f"no request for {self.idle_timeout:g} s; connection closed")))
                    await writer.drain()
                    return
                except (ValueError, asyncio.LimitOverrunError):
                    writer.write(wire.encode(protocol.error(
                        None, "too_large", f"request exceeds {protocol.MAX_LINE} bytes; connection closed")))
                    await writer.drain()
                    return
                if not line:
                    return
                if not line.strip():
                    continue
                try:
                    request = wire.decode_request(line)
                except protocol.ProtocolError as exc:
                    writer.write(wire.encode(protocol.error(None, "bad_request", str(exc), exc.field)))
                    await writer.drain()
                    continue
                if request.op == "subscribe":
                    watch.close()  # a subscriber only reads: it is never idle
                    await self._stream(request, reader, writer)
                    return
                writer.write(wire.encode(await self.dispatch(request)))
                await writer.drain()
        finally:
            watch.close()

    async def dispatch(self, request: protocol.Request) -> protocol.Reply:
        handler = self._ops.get(request.op)
        if handler is None:
            return protocol.error(request.id, "unsupported", f"op {request.op!r} is not available in this daemon")
        model = REQUESTS.get(request.op)
        try:
            result = await (handler(parse(model, request.params)) if model else handler())
            return protocol.ok(request.id, _render(result))
        except ValidationError as exc:
            return protocol.error(request.id, exc.code, str(exc), exc.field)
        except StorageError as exc:
            log.error("%s failed: %s", request.op, exc)
            return protocol.error(request.id, exc.code, str(exc))
        except FnotifyError as exc:
            return protocol.error(request.id, exc.code, str(exc))
        except Exception:
            log.exception("op %s failed unexpectedly", request.op)
            return protocol.error(request.id, "internal", "internal error; see the daemon log")

    async def _send(self, send: SendRequest) -> protocol.SendResultJSON | protocol.BatchSendJSON:
        if send.group is not None:
            return batch_reply(*await self.service.send_group(send))
        notification, created = await self.service.send(send)
        return {**notification.to_json(), "created": created}

    async def _ping(self) -> str:
        return "pong"

    async def _stream(self, request: protocol.Request, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        try:
            kinds = parse(SubscribeRequest, request.params).events
        except ValidationError as exc:
            writer.write(wire.encode(protocol.error(request.id, exc.code, str(exc), exc.field)))
            return
        with self.service.events.subscribe() as events:
            # the acknowledgement goes out only once the subscription is registered on the bus: a
            # client that has read it sees every event published after (DaemonClient.subscribe)
            subscribed: protocol.SubscribedJSON = {"subscribed": list(kinds) if kinds else "all"}
            writer.write(wire.encode(protocol.ok(request.id, subscribed)))
            await writer.drain()
            closed = asyncio.ensure_future(_discard_until_eof(reader, protocol.MAX_LINE))
            try:
                while True:
                    next_event = asyncio.ensure_future(events.get())
                    done, _ = await asyncio.wait({next_event, closed}, return_when=asyncio.FIRST_COMPLETED)
                    if closed in done:
                        next_event.cancel()
                        if closed.result():
                            writer.write(wire.encode(protocol.error(
                                None, "too_large", f"more than {protocol.MAX_LINE} bytes sent after subscribe "
                                "(a subscriber only reads); connection closed")))
                        return
                    event = next_event.result()
                    if event is None:
                        return
                    if kinds is None or event["event"] in kinds or event["event"] == "overflow":
                        writer.write(wire.encode(event))
                        await writer.drain()
            finally:
                closed.cancel()


async def _discard_until_eof(reader: asyncio.StreamReader, limit: int) -> bool:
    """Read and drop what a subscriber sends (it has nothing more to say) until EOF; True once it has
    sent more than ``limit`` bytes. Nothing is kept: the old ``reader.read()`` buffered it all."""
    sent = 0
    while chunk := await reader.read(65_536):
        sent += len(chunk)
        if sent > limit:
            return True
    return False


async def _linger_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Close after an unsolicited error reply without resetting the connection: a peer whose request
    is still unread would get ECONNRESET instead of the reply, so read (and drop) what it sent first."""
    with contextlib.suppress(ConnectionError, OSError, ValueError, TimeoutError, asyncio.LimitOverrunError):
        await writer.drain()
        writer.write_eof()
        async with asyncio.timeout(LINGER_SECONDS):
            while await reader.read(65_536):
                pass
    await _close(writer)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()
