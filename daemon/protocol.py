"""The socket protocol: newline-delimited JSON over a Unix stream socket.

Request:  {"id": 1, "op": "send", "params": {"recipient_id": 1, "message": "hi"}}
Reply:    {"id": 1, "ok": true, "result": {...}}
          {"id": 1, "ok": false, "error": {"code": "invalid", "message": "...", "field": "recipient_id"}}
Events (after a successful ``subscribe``): {"event": "attempt.finished", "at": "...", "data": {...}}

This module is the whole contract between the daemon and its clients (CLI, TUI): both sides
import it, and the TUI imports nothing else from the daemon. It holds the vocabulary (``Channel``,
``Status``, ``Outcome``) and the shape of every envelope, reply and event payload as ``TypedDict``s:
the daemon's producers are annotated with them and the clients read them, so mypy checks both
sides of the wire. See docs/protocol.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, NotRequired, TypedDict, cast

MAX_LINE = 1024 * 1024  # one request may not exceed 1 MiB
OPS = (
    "ping", "status", "health", "pause", "resume",
    "send", "show", "list", "cancel", "retry",
    "recipient.add", "recipient.list", "recipient.show", "recipient.update", "recipient.remove",
    "recipient.link",
    "backup",
    "subscribe",
)


class ProtocolError(Exception):
    """A request that cannot be understood; the reply names the problem."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Request:
    op: str
    params: dict[str, Any] = field(default_factory=dict)
    id: Any = None


# -- vocabulary ----------------------------------------------------------------------------------

class Channel(StrEnum):
    """A delivery channel a chain is made of."""

    TELEGRAM = "telegram"
    EMAIL = "email"
    SMS = "sms"


class Status(StrEnum):
    """Lifecycle of a notification: queued -> sending -> a final state; ``held`` waits out the
    recipient's quiet hours (due again at their end), then goes on as ``sending``."""

    QUEUED = "queued"
    SENDING = "sending"
    HELD = "held"
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


# StrEnum members hash and compare as their values, so a plain ``"failed"`` read off the wire is
# found in these sets too
FINAL_STATUSES = frozenset(
    {Status.DELIVERED, Status.ACKNOWLEDGED, Status.FAILED, Status.CANCELLED, Status.EXPIRED}
)
SUCCESS_STATUSES = frozenset({Status.DELIVERED, Status.ACKNOWLEDGED})
REDRIVABLE_STATUSES = frozenset({Status.FAILED, Status.EXPIRED})  # what the ``retry`` op accepts


class Priority(StrEnum):
    """How urgent a notification is: ``high`` and ``critical`` are not held by quiet hours, and a
    backlog is claimed higher priority first."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 (low) .. 3 (critical): what the stores keep and order claims by."""
        return _PRIORITY_ORDER.index(self)

    @classmethod
    def from_rank(cls, rank: int) -> Priority:
        return _PRIORITY_ORDER[rank]

    @property
    def bypasses_quiet_hours(self) -> bool:
        return self.rank >= _PRIORITY_ORDER.index(Priority.HIGH)


_PRIORITY_ORDER = (Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.CRITICAL)


class Outcome(StrEnum):
    """What one attempt on one channel came to."""

    DELIVERED = "delivered"  # the provider accepted the message
    RETRY = "retry"  # transient failure: the same channel is tried again
    FAILED = "failed"  # permanent for this channel: fail over now
    SKIPPED = "skipped"  # the channel cannot serve this recipient
    INTERRUPTED = "interrupted"  # the daemon stopped while the attempt was in flight
    UNACKNOWLEDGED = "unacknowledged"  # delivered but not acknowledged in time
    UNDELIVERED = "undelivered"  # accepted by the SMS provider, then reported undelivered by the carrier


# -- envelopes -------------------------------------------------------------------------------------
# Values typed ``str`` below carry the vocabulary above (``status`` a Status, ``channel`` a Channel,
# ``outcome`` an Outcome) as plain strings, which is what a client gets from ``json.loads``; times
# are ISO 8601 strings with milliseconds and an offset.

class RequestJSON(TypedDict):
    id: NotRequired[Any]  # any JSON value; echoed back in the reply
    op: str
    params: NotRequired[dict[str, Any]]


class ErrorJSON(TypedDict):
    code: str
    message: str
    field: NotRequired[str]  # the parameter at fault, when there is one


class OkReply(TypedDict):
    id: Any
    ok: Literal[True]
    result: Any  # the op's result: see the *JSON types below and docs/protocol.md


class ErrorReply(TypedDict):
    id: Any  # null for a reply the daemon sends on its own (busy, forbidden, idle, too_large)
    ok: Literal[False]
    error: ErrorJSON


Reply = OkReply | ErrorReply


# -- replies ---------------------------------------------------------------------------------------

class AttemptJSON(TypedDict):
    id: int
    notification_id: int
    channel: str
    outcome: str | None  # None while the attempt is in flight
    error: str | None  # secrets redacted
    provider_message_id: str | None
    started_at: str
    finished_at: str | None
    retry_at: str | None  # when the same channel is tried again (outcome retry)
    duration_ms: float | None


class NotificationSummaryJSON(TypedDict):
    """A notification without its attempt log (``list``, ``notification.created``)."""

    id: int
    recipient_id: int
    text: str
    subject: str | None
    chain: list[str]
    status: str
    priority: str  # low / normal / high / critical
    idempotency_key: str | None
    channel: str | None  # the channel that delivered, or the one being tried
    next_attempt_at: str | None
    deadline: str | None
    ack_timeout: float | None
    created_at: str
    updated_at: str
    attempt_count: int


class NotificationJSON(NotificationSummaryJSON):
    """``show``, ``cancel``, ``retry``, and each item of ``list``."""

    attempts: list[AttemptJSON]


class SendResultJSON(NotificationJSON):
    created: bool  # False: the idempotency key was seen before and nothing new is sent


class RecipientJSON(TypedDict):
    id: int
    name: str
    email: str | None
    phone: str | None
    telegram_chat_id: int | None
    opt_out: list[str]
    telegram_blocked: bool
    telegram_state: str  # linked / not linked / opted out / blocked
    timezone: str  # IANA name, e.g. Europe/Moscow; quiet hours are read on its wall clock
    quiet_hours: str | None  # "22:00-07:00" (may cross midnight), or None: never quiet
    created_at: str


class BreakerJSON(TypedDict):
    state: str  # closed / open / half_open
    consecutive_failures: int
    probe_in_s: float | None  # seconds until the open breaker lets one probe through


class SmsStatusJSON(TypedDict):
    receipts: str  # callback / poll / off
    recipient_limits: list[str]  # the per-recipient caps in force, e.g. "5/15m"
    daily_budget: int | None  # SMS segments per UTC day, every daemon together; None: no budget
    budget_used_today: int  # segments sent today (UTC)


class StatusJSON(TypedDict):
    version: str
    uptime_s: float
    in_flight: int
    paused: bool
    counts: dict[str, int]  # notifications by status
    queue_depth: int
    channels: dict[str, bool]  # channel -> enabled
    subscribers: int
    retry: dict[str, Any]  # the retry policy in force
    storage: str  # where the data lives: the SQLite file, or the PostgreSQL URL without its password
    sms: NotRequired[SmsStatusJSON]  # SMS receipts, caps and today's budget use
    members: list[MemberJSON]  # the daemons sharing the database (one on SQLite)


class MemberJSON(TypedDict):
    id: str  # the daemon id, "<hostname>:<pid>:<random>"
    host: str
    pid: int
    started_at: str
    heartbeat_at: str  # its last heartbeat (every [storage] lease / 2)
    leads: list[str]  # roles it holds: "telegram-bot" is the daemon polling Telegram
    self: bool  # the daemon answering


class LinkJSON(TypedDict):
    recipient_id: int
    url: str
    token: str
    expires_at: str
    bot: str


class SubscribedJSON(TypedDict):
    subscribed: list[str] | Literal["all"]


# -- events ----------------------------------------------------------------------------------------

class AttemptStartedData(TypedDict):
    notification_id: int
    attempt_id: int
    channel: str


class NotificationStatusData(TypedDict):
    """The engine sends these keys; a status change made through the API (cancel, retry, the
    "Got it" button) sends the whole ``NotificationSummaryJSON``, which has them too."""

    id: int
    recipient_id: int
    status: str
    channel: str | None
    created_at: str  # when it was sent: the metrics' send-to-delivered latency


class AwaitingAckData(TypedDict):
    id: int
    recipient_id: int
    until: str | None  # when the next channel is tried unless the button is pressed


class AwaitingReceiptData(TypedDict):
    id: int
    recipient_id: int
    message_sid: str  # the SMS provider's id, which its delivery receipt names
    until: str | None  # when it counts as delivered if no final receipt came


class SmsBudgetData(TypedDict):
    used: int  # SMS segments sent today (UTC), every daemon together
    budget: int  # [sms] daily_budget


class BreakerEventData(BreakerJSON):
    channel: str


class RecipientTelegramData(TypedDict):
    """recipient.linked / opted_out / opted_in / blocked / unblocked."""

    recipient_id: int
    name: str
    telegram_chat_id: int | None
    telegram_state: str


class RecipientRemovedData(TypedDict):
    id: int


class LinkCreatedData(TypedDict):
    recipient_id: int
    expires_at: str


class PausedData(TypedDict):
    paused: bool


class OverflowData(TypedDict):
    reason: str


RecipientTelegramKind = Literal[
    "recipient.linked", "recipient.opted_out", "recipient.opted_in", "recipient.blocked", "recipient.unblocked",
]
RecipientChangedKind = Literal["recipient.added", "recipient.updated"]
OVERFLOW: Literal["overflow"] = "overflow"


# one envelope per kind, so that narrowing on ``event["event"]`` types ``event["data"]``

class NotificationCreatedEvent(TypedDict):
    event: Literal["notification.created"]
    at: str
    data: NotificationSummaryJSON


class NotificationStatusEvent(TypedDict):
    event: Literal["notification.status"]
    at: str
    data: NotificationStatusData


class AwaitingAckEvent(TypedDict):
    event: Literal["notification.awaiting_ack"]
    at: str
    data: AwaitingAckData


class AwaitingReceiptEvent(TypedDict):
    event: Literal["notification.awaiting_receipt"]
    at: str
    data: AwaitingReceiptData


class SmsBudgetEvent(TypedDict):
    event: Literal["sms.budget"]
    at: str
    data: SmsBudgetData


class AttemptStartedEvent(TypedDict):
    event: Literal["attempt.started"]
    at: str
    data: AttemptStartedData


class AttemptFinishedEvent(TypedDict):
    event: Literal["attempt.finished"]
    at: str
    data: AttemptJSON


class BreakerEvent(TypedDict):
    event: Literal["channel.breaker"]
    at: str
    data: BreakerEventData


class RecipientChangedEvent(TypedDict):
    event: RecipientChangedKind
    at: str
    data: RecipientJSON


class RecipientRemovedEvent(TypedDict):
    event: Literal["recipient.removed"]
    at: str
    data: RecipientRemovedData


class LinkCreatedEvent(TypedDict):
    event: Literal["recipient.link_created"]
    at: str
    data: LinkCreatedData


class RecipientTelegramEvent(TypedDict):
    event: RecipientTelegramKind
    at: str
    data: RecipientTelegramData


class PausedEvent(TypedDict):
    event: Literal["daemon.paused"]
    at: str
    data: PausedData


class OverflowEvent(TypedDict):
    """The last event of a stream whose subscriber fell behind (it has no ``at``)."""

    event: Literal["overflow"]
    data: OverflowData


Event = (
    NotificationCreatedEvent | NotificationStatusEvent | AwaitingAckEvent | AttemptStartedEvent
    | AttemptFinishedEvent | BreakerEvent | RecipientChangedEvent | RecipientRemovedEvent | LinkCreatedEvent
    | RecipientTelegramEvent | PausedEvent | OverflowEvent | AwaitingReceiptEvent | SmsBudgetEvent
)


# -- framing ---------------------------------------------------------------------------------------

def encode(obj: Any) -> bytes:
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)
    try:
        return text.encode() + b"\n"
    except UnicodeEncodeError:  # a lone surrogate echoed back (a request id, a refused value): \u-escape it
        return json.dumps(obj, separators=(",", ":"), default=str).encode() + b"\n"


def decode_request(line: bytes) -> Request:
    try:
        data = json.loads(line)
    except (ValueError, RecursionError) as exc:
        # ValueError: bad UTF-8, bad JSON, or an integer of more than 4300 digits; RecursionError:
        # nesting deeper than the parser's stack (a few thousand brackets)
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ProtocolError(f"not valid JSON: {reason}") from None
    if not isinstance(data, dict):
        raise ProtocolError("a request must be a JSON object")
    op = data.get("op")
    if not isinstance(op, str):
        raise ProtocolError("missing 'op' (a string)", "op")
    if op not in OPS:
        raise ProtocolError(f"unknown op {op!r}; known: {', '.join(OPS)}", "op")
    params = data.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ProtocolError("'params' must be a JSON object", "params")
    unknown = sorted(set(data) - {"op", "params", "id"})
    if unknown:
        raise ProtocolError(f"unknown top-level key {unknown[0]!r} (use 'params')", unknown[0])
    return Request(op=op, params=params, id=data.get("id"))


def ok(request_id: Any, result: Any) -> OkReply:
    return {"id": request_id, "ok": True, "result": result}


def error(request_id: Any, code: str, message: str, field: str | None = None) -> ErrorReply:
    err: ErrorJSON = {"code": code, "message": message}
    if field is not None:
        err["field"] = field
    return {"id": request_id, "ok": False, "error": err}


def decode_reply(line: bytes) -> Reply:
    """A reply line as the client reads it: its envelope is checked, so ``ok`` and ``error`` can be
    trusted; the ``result`` is what the op documents."""
    try:
        data = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"reply is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("ok"), bool):
        raise ProtocolError("a reply must be a JSON object with a boolean 'ok'")
    if data["ok"]:
        return {"id": data.get("id"), "ok": True, "result": data.get("result")}
    err = data.get("error")
    err = err if isinstance(err, dict) else {}
    body: ErrorJSON = {"code": str(err.get("code", "error")), "message": str(err.get("message", "unknown error"))}
    if isinstance(err.get("field"), str):
        body["field"] = err["field"]
    return {"id": data.get("id"), "ok": False, "error": body}


def decode_event(line: bytes) -> Event:
    """One line of a ``subscribe`` stream. The envelope is checked (an object with a string
    ``event`` and an object ``data``); the payload is the daemon's, typed by its kind."""
    try:
        data = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"event is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("event"), str) or not isinstance(data.get("data"), dict):
        raise ProtocolError("an event must be a JSON object with a string 'event' and an object 'data'")
    return cast(Event, data)


# -- showing text from the protocol ---------------------------------------------------------------
# Text fields in replies and events (a message, a subject, a recipient's name) come from any API
# client. They may carry ESC sequences that clear the screen, set the window title or write the
# clipboard (OSC 52), a CR that overwrites a line to fake a "DELIVERED", C1 controls (U+0080-U+009F,
# 8-bit escapes to some terminals) or a bidi override (U+202E) that reorders what is shown. Clients
# (the CLI, the TUI) show them through ``visible``, which writes each of those as an escape
# (``\x1b``, ``\u202e``); all other text, emoji and their zero-width joiners included, is unchanged.

# C0 (ESC, BEL, CR, TAB, LF...), DEL and C1; bidi marks, embeddings, overrides and isolates; the
# line and paragraph separators; lone surrogates (which would make print() itself raise)
_UNSAFE = "\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff"
UNSAFE = re.compile(f"[\x00-\x1f{_UNSAFE}]")
UNSAFE_KEEPING_NEWLINES = re.compile(f"[\x00-\x09\x0b-\x1f{_UNSAFE}]")
# what json.dumps(ensure_ascii=False) leaves raw: it already escapes C0 inside strings, and outside
# strings JSON is ASCII, so any of these is inside a string and may be written as \uXXXX
UNSAFE_IN_JSON = re.compile(f"[{_UNSAFE}]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def visible(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` safe for a terminal: control, bidi and separator characters written as ``\\x1b``,
    ``\\r``, ``\\u202e``... (a newline too, unless ``keep_newlines``). Other text is unchanged."""
    return (UNSAFE_KEEPING_NEWLINES if keep_newlines else UNSAFE).sub(_escape, text)


# -- what a client raises -------------------------------------------------------------------------
# Shared by the async client (``daemon.client``: the TUI, tests) and the blocking one
# (``daemon.blocking_client``: the CLI), so callers catch one set of errors whichever they use.

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


def remote_error(err: ErrorJSON) -> RemoteError:
    """The exception for a refusal the daemon sent."""
    return RemoteError(err["code"], err["message"], err.get("field"))
