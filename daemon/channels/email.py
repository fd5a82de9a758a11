"""The email channel: an ``EmailMessage`` per notification, sent over a small pool of SMTP connections.

Connections are reused, not opened per message: up to ``pool_size`` ``aiosmtplib.SMTP`` clients are
connected lazily and handed back to an idle stack after each message (aiosmtplib sends RSET itself
after a refused envelope, so a connection that saw a 550 is still clean). A client the server hung
up on is dropped and replaced on the next send; one that sat idle for a while is pinged with NOOP
before reuse, so a server-side idle timeout does not cost a failed attempt.

This module is the only place that looks at aiosmtplib's exceptions; ``_translate`` maps them:
    5xx reply (recipient refused, sender refused, data refused...)   PermanentError
    4xx reply (451 temporary failure, 421 rate limited...)           TransientError
    535 on login                                                     PermanentError (no password shown)
    connect failure, timeout, disconnect, any OSError                TransientError
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP, Policy
from email.utils import format_datetime, make_msgid, parseaddr

import aiosmtplib

from daemon.config import EmailConfig
from daemon.core.channel import OutgoingMessage
from daemon.core.errors import ChannelError, PermanentError, TransientError
from daemon.core.models import Channel, Recipient
from daemon.core.ratelimit import Limit, MemoryRateLimits, Pacer, RateLimitStore

log = logging.getLogger(__name__)

SUBJECT_MAX = 60
RATE_KEY = "email"
"""``[email] rate``'s key among the rate limits (shared by every daemon on one PostgreSQL)."""
DEFAULT_SUBJECT = "Notification"
IDLE_PING_AFTER = 30.0
"""Seconds a pooled connection may sit idle before it is checked with NOOP on reuse."""
QUIT_TIMEOUT = 2.0
# str.splitlines() breaks on these too; any of them in a header would start a new line somewhere
LINE_BREAKS = frozenset("\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029")
WORD_BYTES = 42
"""UTF-8 bytes per encoded word: 56 base64 characters, a 68-character word, so "Subject: " plus
one word stays within the 78-character line RFC 5322 recommends (RFC 2047 allows 75 per word)."""
# printable ASCII words separated by single spaces, none of which looks like an encoded word:
# the email package folds and unfolds these losslessly, so they stay readable on the wire
PLAIN_SUBJECT = re.compile(r"(?!.*=\?)(?:[!-~]{1,60}(?: [!-~]{1,60})*)?")
# a dot-atom ASCII address: the email package writes it as given, and it is its own envelope address
PLAIN_ADDRESS = re.compile(r"[\w!#$%&'*+/=?^`{|}~-]+(?:\.[\w!#$%&'*+/=?^`{|}~-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*",
                           re.ASCII)
LINE_MAX = 78
"""RFC 5322's recommended line length, the email package's ``max_line_length``: its 7bit cut-off."""


@dataclass(slots=True)
class _Pooled:
    client: aiosmtplib.SMTP
    last_used: float


class EmailChannel:
    """ChannelAdapter for SMTP: delivery, pooled connections, error classification."""

    name = Channel.EMAIL

    def __init__(self, config: EmailConfig, rate_limits: RateLimitStore | None = None) -> None:
        self.config = config
        self._password = config.password.get_secret_value() if config.password is not None else None
        self._domain = _sender_domain(config.sender)
        self._slots = asyncio.Semaphore(config.pool_size)
        self._rate = (Pacer(rate_limits or MemoryRateLimits(), Limit(RATE_KEY, config.rate))
                      if config.rate else None)
        self._idle: list[_Pooled] = []
        self._closed = False
        self._from = _plain_from(config.sender)  # (From line, envelope sender) when the fast path can use them

    @property
    def endpoint(self) -> str:
        return f"smtp://{self.config.host}:{self.config.port}"

    # --- ChannelAdapter --------------------------------------------------------------------

    async def wait_turn(self, recipient: Recipient) -> None:
        """Pace under ``rate`` (messages per second) when one is configured."""
        if self._rate is not None:
            await self._rate.acquire()

    async def send(self, message: OutgoingMessage) -> str:
        """Send one message; return its Message-ID (angle brackets included)."""
        address, subject = _checked(message)
        message_id = make_msgid(idstring=f"n{message.notification_id}", domain=self._domain)
        date = format_datetime(datetime.now(UTC))
        raw = self.wire_message(address, subject, message.text, date, message_id)
        email = self.build_message(message, date=date, message_id=message_id) if raw is None else None
        async with self._slots:
            pooled = await self._checkout()
            try:
                if email is not None:
                    await pooled.client.send_message(email)
                else:  # what send_message would do with the same bytes: raw is 7-bit, ASCII envelope
                    assert self._from is not None and raw is not None
                    await pooled.client.sendmail(self._from[1], [address], raw)
            except (aiosmtplib.SMTPException, OSError, TimeoutError, ValueError) as exc:
                self._after_failure(pooled)
                raise self._translate(exc) from exc
            except BaseException:  # cancelled mid-conversation: the connection state is unknown
                pooled.client.close()
                raise
            await self._checkin(pooled)
        log.debug("email %s accepted by %s for %s", message_id, self.endpoint, address)
        return message_id

    async def check(self) -> str:
        """Connect, EHLO and log in on a fresh connection; describe the server."""
        client = self._new_client()
        try:
            await client.connect()
            if client.last_ehlo_response is None:
                await client.ehlo()
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise self._translate(exc) from exc
        finally:
            await _quit(client)
        login = f", login as {self.config.username}" if self.config.username else ""
        return f"{self.endpoint} ({self.config.security}{login})"

    async def close(self) -> None:
        """QUIT every idle connection; connections still in use are closed when their send ends.

        A send after close() still works, on a connection of its own that is not kept.
        """
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_quit(p.client) for p in idle))

    # --- the message -----------------------------------------------------------------------

    def build_message(self, message: OutgoingMessage, *, date: str | None = None,
                      message_id: str | None = None) -> EmailMessage:
        """The RFC 5322 message for ``message``; PermanentError when it cannot be built safely."""
        address, subject = _checked(message)
        email = EmailMessage()
        try:
            email["From"] = self.config.sender
            email["To"] = address
            email["Subject"] = subject if PLAIN_SUBJECT.fullmatch(subject) else EncodedSubject(subject)
            email["Date"] = date or format_datetime(datetime.now(UTC))
            email["Message-ID"] = message_id or make_msgid(idstring=f"n{message.notification_id}", domain=self._domain)
            email["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies, please
            # quoted-printable keeps non-ASCII text 7-bit clean for servers without 8BITMIME
            email.set_content(message.text, cte=None if message.text.isascii() else "quoted-printable")
        except (ValueError, TypeError) as exc:
            raise PermanentError(f"cannot build the email: {exc}") from exc
        return email

    def wire_message(self, address: str, subject: str, text: str, date: str, message_id: str) -> bytes | None:
        """The bytes aiosmtplib's ``send_message`` would send for ``build_message``'s message, written
        directly when every part is plain ASCII that the email package leaves as it is (a dot-atom address,
        a plain subject on one line, 7bit text); else None (``build_message`` does it). The email package
        costs about 1.5 ms a message (it parses every header it is given); this, a few microseconds.
        tests/test_email_wire.py checks both give the same bytes."""
        if self._from is None or not text.isascii() or len(subject) > LINE_MAX - 9 or len(address) > LINE_MAX - 4:
            return None
        lines = text.encode("ascii").splitlines()
        if any(len(line) > LINE_MAX for line in lines) or not PLAIN_SUBJECT.fullmatch(subject) \
                or not PLAIN_ADDRESS.fullmatch(address):
            return None
        head = (f"To: {address}\r\nSubject:{' ' if subject else ''}{subject}\r\nDate: {date}\r\n"
                f"Message-ID: {message_id}\r\nAuto-Submitted: auto-generated\r\n"
                "Content-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: 7bit\r\n"
                "MIME-Version: 1.0\r\n\r\n")
        return self._from[0] + head.encode("ascii") + b"\r\n".join(lines) + b"\r\n"

    # --- the pool --------------------------------------------------------------------------

    def _new_client(self) -> aiosmtplib.SMTP:
        security = self.config.security
        return aiosmtplib.SMTP(
            hostname=self.config.host,
            port=self.config.port,
            username=self.config.username,
            password=self._password if self.config.username else None,
            timeout=self.config.timeout,
            use_tls=security == "tls",
            start_tls=security == "starttls",
        )

    async def _checkout(self) -> _Pooled:
        """An idle connected client (most recently used first), else a new connection."""
        while self._idle:
            pooled = self._idle.pop()
            if not pooled.client.is_connected:
                pooled.client.close()
                continue
            if time.monotonic() - pooled.last_used > IDLE_PING_AFTER:
                try:
                    await pooled.client.noop()
                except (aiosmtplib.SMTPException, OSError, TimeoutError):
                    pooled.client.close()
                    continue
            return pooled
        client = self._new_client()
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            client.close()
            raise self._translate(exc) from exc
        log.debug("email: new SMTP connection to %s", self.endpoint)
        return _Pooled(client, time.monotonic())

    async def _checkin(self, pooled: _Pooled) -> None:
        if self._closed or not pooled.client.is_connected:
            await _quit(pooled.client)
            return
        pooled.last_used = time.monotonic()
        self._idle.append(pooled)

    def _after_failure(self, pooled: _Pooled) -> None:
        # a refused envelope leaves the connection usable (aiosmtplib sent RSET); anything else
        # (disconnect, timeout, 421) has already closed it or left it in an unknown state
        if pooled.client.is_connected and not self._closed:
            pooled.last_used = time.monotonic()
            self._idle.append(pooled)
        else:
            pooled.client.close()

    # --- errors ----------------------------------------------------------------------------

    def _translate(self, exc: BaseException) -> ChannelError:
        """The ChannelError for an aiosmtplib / socket failure (the caller chains it with ``from``)."""
        where = self.endpoint
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            return PermanentError(f"SMTP login rejected: {exc.code} {self._redact(exc.message)}")
        if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
            first = exc.recipients[0] if exc.recipients else None
            if first is None:
                return PermanentError("SMTP server refused every recipient")
            return self._by_code(first.code, f"{first.recipient}: {first.message}")
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return self._by_code(exc.code, exc.message)
        if isinstance(exc, ssl.SSLCertVerificationError):
            return PermanentError(f"TLS certificate of {where} not trusted: {exc.verify_message}")
        if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
            return TransientError(f"SMTP server {where} timed out: {str(exc) or 'no answer'}")
        if isinstance(exc, aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError | OSError):
            return TransientError(f"SMTP server {where} unreachable: {self._redact(str(exc))}")
        if isinstance(exc, ValueError):  # aiosmtplib refuses addresses unsafe on a command line
            return PermanentError(f"cannot send: {exc}")
        # SMTPNotSupported and a bare SMTPException (e.g. no AUTH offered): configuration, not luck
        return PermanentError(f"SMTP server {where}: {self._redact(str(exc))}")

    def _by_code(self, code: int, text: str) -> ChannelError:
        detail = f"SMTP {code} {self._redact(text)}".strip()
        return PermanentError(detail) if 500 <= code < 600 else TransientError(detail)

    def _redact(self, text: str) -> str:
        if self._password:
            text = text.replace(self._password, "***")
        return text


def default_subject(text: str) -> str:
    """The first non-empty line of ``text``, cut to 60 characters (the subject when none is given)."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if not line:
        return DEFAULT_SUBJECT
    return line if len(line) <= SUBJECT_MAX else line[: SUBJECT_MAX - 1].rstrip() + "…"


class EncodedSubject(str):
    """A Subject header written as RFC 2047 encoded words, each space kept inside a word.

    Python's header folder puts the space between two words *between* two encoded words, where
    decoders drop it (RFC 2047 §6.2): "темы, довольно" arrived as "темы,довольно". Here the text is
    cut into encoded words at character boundaries only, so decoding gives back exactly the text.
    The email package uses an object with ``name`` and ``fold()`` as the header as is (the
    documented ``EmailPolicy.header_store_parse`` contract), so the policy never refolds it.
    """

    name = "Subject"
    _words: list[str]

    def __new__(cls, text: str) -> EncodedSubject:
        self = super().__new__(cls, text)
        # encode now: a lone surrogate fails here, inside build_message, not halfway through a send
        self._words = encoded_words(text)
        return self

    def fold(self, *, policy: Policy) -> str:
        """``Subject: word`` with one encoded word per line (``policy`` gives the line ending)."""
        return f"{self.name}: " + f"{policy.linesep} ".join(self._words) + policy.linesep


def encoded_words(text: str) -> list[str]:
    """``text`` as UTF-8 base64 encoded words of at most WORD_BYTES bytes, never splitting a character."""
    words: list[str] = []
    chunk = b""
    for char in text:
        encoded = char.encode("utf-8")
        if chunk and len(chunk) + len(encoded) > WORD_BYTES:
            words.append(_encoded_word(chunk))
            chunk = b""
        chunk += encoded
    return [*words, _encoded_word(chunk)]


def _encoded_word(chunk: bytes) -> str:
    return f"=?utf-8?b?{base64.b64encode(chunk).decode('ascii')}?="


def _checked(message: OutgoingMessage) -> tuple[str, str]:
    """The address and the subject of ``message``; PermanentError when either cannot go in a header."""
    address = message.recipient.email
    if address is None:
        raise PermanentError("no email address")
    if _has_line_break(address):
        raise PermanentError(f"email address {address!r} contains a line break")
    subject = message.subject if message.subject is not None else default_subject(message.text)
    if _has_line_break(subject):
        # a CR/LF in a header is header injection (Bcc:, a second body...): refuse, never strip
        raise PermanentError(f"subject {subject!r} contains a line break")
    return address, subject


def _plain_from(sender: str) -> tuple[bytes, str] | None:
    """The From line (as aiosmtplib writes it) and the envelope sender, when the fast path may use them:
    one well-formed address, ASCII (a non-ASCII one needs SMTPUTF8). Else None: the email package decides."""
    try:
        header = SMTP.header_factory("From", sender)
        addresses = header.addresses
        if header.defects or len(addresses) != 1 or not addresses[0].addr_spec.isascii():
            return None
        return SMTP.fold_binary("From", header), str(addresses[0].addr_spec)
    except (ValueError, TypeError, AttributeError):
        return None


def _has_line_break(value: str) -> bool:
    return any(ch in LINE_BREAKS for ch in value)


def _sender_domain(sender: str) -> str:
    _, address = parseaddr(sender)
    domain = address.rpartition("@")[2]
    return domain or "failover-notify.localhost"


async def _quit(client: aiosmtplib.SMTP) -> None:
    """QUIT politely, then close whatever state the connection is in."""
    try:
        if client.is_connected:
            await client.quit(timeout=QUIT_TIMEOUT)
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        pass
    finally:
        client.close()
