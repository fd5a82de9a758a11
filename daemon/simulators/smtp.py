"""A loopback SMTP server (aiosmtpd's protocol on the caller's event loop) that records what it accepts.

The server runs on the *current* asyncio loop (``loop.create_server`` with aiosmtpd's ``SMTP``
protocol), not in aiosmtpd's controller thread: tests and the demo run everything in one loop,
so a fault, a recorded message and a counter are visible at once without locks.

Credentials: ``SmtpSimulator(username, password)`` offers AUTH LOGIN/PLAIN on the plain connection
(loopback, so no TLS is asked for) and answers MAIL with 530 until the client logged in; wrong
credentials get 535. Without credentials AUTH is not offered, as on a plain relay.

Faults (``self.faults``, target = the recipient address) are consulted on RCPT:
    down        the connection is dropped without an answer
    error       451 4.3.0 temporary failure
    rate_limit  421 4.7.0 rate limited, and the server closes the connection (as 421 means)
    permanent   550 5.1.1 mailbox unavailable (``blocked`` is answered the same way)
    latency     the answer waits ``delay`` seconds, then the recipient is accepted
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from daemon.simulators.control import fault_routes
from daemon.simulators.faults import FaultPlan, FaultRule
from daemon.simulators.loopback import is_loopback

log = logging.getLogger(__name__)

READY_TIMEOUT = 5.0
STOP_TIMEOUT = 2.0
SERVER_NAME = "smtp.failover-notify.test"


@dataclass(frozen=True, slots=True)
class SmtpRecord:
    """One message the simulator accepted (250 after DATA)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    subject: str
    text: str  # the text/plain body, decoded
    raw: bytes  # the message exactly as it came after DATA
    message_id: str | None
    queue_id: str
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_json(self) -> dict[str, Any]:
        return {
            "mail_from": self.mail_from,
            "rcpt_tos": list(self.rcpt_tos),
            "subject": self.subject,
            "text": self.text,
            "message_id": self.message_id,
            "queue_id": self.queue_id,
            "size": len(self.raw),
            "received_at": self.received_at.isoformat(timespec="milliseconds"),
        }


def parse_record(mail_from: str, rcpt_tos: list[str], raw: bytes) -> SmtpRecord:
    """Decode the subject and the text body of a raw RFC 5322 message."""
    # the wire uses CRLF; the email package's decoders expect \n and would leave \r in the text
    message = BytesParser(policy=policy.default).parsebytes(raw.replace(b"\r\n", b"\n"))
    assert isinstance(message, EmailMessage)  # policy.default makes EmailMessage
    part = message.get_body(preferencelist=("plain",))
    text = ""
    if isinstance(part, EmailMessage):
        with contextlib.suppress(LookupError, ValueError):  # an unknown charset or a bad encoding
            text = str(part.get_content())
    return SmtpRecord(
        mail_from=mail_from,
        rcpt_tos=tuple(rcpt_tos),
        subject=str(message.get("Subject", "")),
        text=text,
        raw=raw,
        message_id=str(message["Message-ID"]) if message["Message-ID"] else None,
        queue_id=secrets.token_hex(6).upper(),
    )


class SmtpSimulator:
    """An SMTP server on 127.0.0.1 with optional AUTH, fault injection and a message log."""

    def __init__(
        self, username: str | None = None, password: str | None = None, *, faults: FaultPlan | None = None
    ) -> None:
        if (username is None) != (password is None):
            raise ValueError("username and password: give both or neither")
        self.username = username
        self.password = password
        self.faults = faults if faults is not None else FaultPlan()
        self.received: list[SmtpRecord] = []
        self.connections = 0
        """TCP connections accepted since start (or reset), the readiness probe excluded."""
        self.host: str | None = None
        self.port: int | None = None
        self._sessions: weakref.WeakSet[_SimulatorSMTP] = weakref.WeakSet()
        self._changed = asyncio.Event()
        self._server: asyncio.Server | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen on ``host:port`` (loopback only; port 0 picks a free one); return the bound address."""
        if not is_loopback(host):
            raise ValueError(f"host: the SMTP simulator only binds loopback, not {host!r}")
        if self._server is not None:
            raise RuntimeError("SMTP simulator already started")
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: self._new_session(loop), host, port)
        try:
            bound_host, bound_port = server.sockets[0].getsockname()[:2]
            await _prove_listening(bound_host, bound_port)
        except BaseException:
            server.close()
            await self._close_sessions()
            raise
        self._server = server
        self.host, self.port = bound_host, bound_port
        self.connections = 0  # the probe is not a client
        log.debug("SMTP simulator listening on %s:%s", bound_host, bound_port)
        return bound_host, bound_port

    async def stop(self) -> None:
        """Stop listening and drop every open connection (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        await self._close_sessions()
        await server.wait_closed()

    @property
    def open_connections(self) -> int:
        """Client connections open right now."""
        return sum(1 for s in self._sessions if s.transport is not None)

    def _new_session(self, loop: asyncio.AbstractEventLoop) -> _SimulatorSMTP:
        self.connections += 1
        handler = _Handler(self)
        session = _SimulatorSMTP(
            handler,
            hostname=SERVER_NAME,
            ident="failover-notify SMTP simulator",
            enable_SMTPUTF8=True,
            # AUTH over plain text is fine on loopback; without credentials AUTH is not offered
            auth_require_tls=self.username is None,
            authenticator=self._authenticate,
            timeout=60,
            loop=loop,
        )
        self._sessions.add(session)
        return session

    async def _close_sessions(self) -> None:
        tasks = []
        for session in list(self._sessions):
            if session.transport is not None:
                session.transport.close()
            if session.handler_task is not None:
                tasks.append(session.handler_task)
        if tasks:
            # closing the transport cancels each session's task; wait so none outlives the loop
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_TIMEOUT):
                    await asyncio.gather(*tasks, return_exceptions=True)

    # --- observation -----------------------------------------------------------------------

    async def wait_for_messages(self, n: int, timeout: float = 5.0) -> list[SmtpRecord]:
        """Wait until at least ``n`` messages were accepted; return them all."""
        await self._wait(lambda: len(self.received) >= n, timeout, f"{n} message(s)")
        return list(self.received)

    async def wait_until_idle(self, timeout: float = 5.0) -> None:
        """Wait until no client connection is open (clients quit or were dropped)."""
        await self._wait(lambda: self.open_connections == 0, timeout, "no open connection")

    async def _wait(self, done: Callable[[], bool], limit: float, expected: str) -> None:
        try:
            async with asyncio.timeout(limit):
                while not done():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(
                f"SMTP simulator: {len(self.received)} message(s) and {self.open_connections} open "
                f"connection(s) after {limit}s, expected {expected}"
            ) from None

    def reset(self) -> None:
        """Forget messages, the connection count and faults."""
        self.received.clear()
        self.connections = 0
        self.faults.clear()

    def _record(self, record: SmtpRecord) -> None:
        self.received.append(record)
        self._changed.set()

    # --- the control API (mounted under /smtp by whoever hosts it) -------------------------

    def control_routes(self) -> web.RouteTableDef:
        """POST /faults (a FaultRule as JSON), GET /faults, DELETE /faults, GET /messages."""
        return fault_routes(self.faults, lambda: self.received)

    # --- protocol hooks --------------------------------------------------------------------

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if self.username is None or self.password is None or not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = hmac.compare_digest(auth_data.login, self.username.encode()) & hmac.compare_digest(
            auth_data.password, self.password.encode()
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


class _QuietSession(Session):
    """aiosmtpd 1.4 sets its own deprecated ``login_data`` on every AUTH and logs a warning each time."""

    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class _SimulatorSMTP(SMTP):
    """aiosmtpd's protocol, exposing the task that serves the connection so stop() can await it."""

    def __init__(self, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._on_lost = handler.sim._changed.set

    def _create_session(self) -> Session:
        return _QuietSession(self.loop)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self._on_lost()

    @property
    def handler_task(self) -> asyncio.Task[None] | None:
        task: asyncio.Task[None] | None = getattr(self, "_handler_coroutine", None)
        return task


class _Handler:
    """aiosmtpd hooks (``handle_<COMMAND>``) of one connection."""

    def __init__(self, sim: SmtpSimulator) -> None:
        self.sim = sim

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.sim.username is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        rule = self.sim.faults.take(address)
        if rule is not None and rule.kind != "latency":
            return await self._fault(server, rule, address)
        if rule is not None:
            await asyncio.sleep(rule.delay)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        record = parse_record(envelope.mail_from or "", list(envelope.rcpt_tos), raw)
        self.sim._record(record)
        log.debug("SMTP simulator accepted %s for %s", record.message_id, ", ".join(record.rcpt_tos))
        return f"250 2.0.0 OK queued as {record.queue_id}"

    async def _fault(self, server: SMTP, rule: FaultRule, address: str) -> str:
        if rule.kind == "error":
            return "451 4.3.0 Temporary failure, try again later"
        if rule.kind in ("permanent", "blocked"):
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        transport = server.transport
        if rule.kind == "rate_limit":
            await server.push("421 4.7.0 Rate limited, try again later; closing connection")
            if transport is not None:
                transport.close()
        elif isinstance(transport, asyncio.Transport):  # down: drop the connection without an answer
            transport.abort()
        elif transport is not None:
            transport.close()
        # connection_lost() cancels this task on the next loop iteration; nothing more is said
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def _prove_listening(host: str, port: int) -> None:
    """Connect to our own socket and read the greeting before saying "started" (as aiosmtpd does)."""
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                greeting = await reader.readline()
                writer.write(b"QUIT\r\n")
                await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError) as exc:
        raise RuntimeError(
            f"SMTP simulator did not greet on {host}:{port} within {READY_TIMEOUT}s: {exc}; "
            "is the port firewalled or the event loop blocked?"
        ) from exc
    if not greeting.startswith(b"220"):
        raise RuntimeError(f"SMTP simulator on {host}:{port} greeted with {greeting!r}, expected 220")
