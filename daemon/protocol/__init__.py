"""The socket protocol: newline-delimited JSON over a Unix stream socket.

Request:  {"id": 1, "op": "send", "params": {"recipient_id": 1, "message": "hi"}}
Reply:    {"id": 1, "ok": true, "result": {...}}
          {"id": 1, "ok": false, "error": {"code": "invalid", "message": "...", "field": "recipient_id"}}
Events (after a successful ``subscribe``): {"event": "attempt.finished", "at": "...", "data": {...}}

This package is the whole contract between the daemon and its clients (CLI, TUI): both sides
import it, and the TUI imports nothing else from the daemon. ``vocabulary`` (the enums), ``shapes``
(the TypedDicts), ``text`` (``visible``: protocol text made safe for a terminal) and ``errors`` (what
a client raises) are re-exported here with the framing, so ``from daemon.protocol import X`` is
all a client writes. It holds the vocabulary (``Channel``,
``Status``, ``Outcome``) and the shape of every envelope, reply and event payload as ``TypedDict``s:
the daemon's producers are annotated with them and the clients read them, so mypy checks both
sides of the wire. See docs/protocol.md.
"""

from __future__ import annotations

import importlib
import json

from daemon.protocol.errors import (
    ClientError,
    DaemonUnavailable,
    RemoteError,
    remote_error,
)
from daemon.protocol.text import (
    UNSAFE,
    UNSAFE_IN_JSON,
    UNSAFE_KEEPING_NEWLINES,
    visible,
)
from daemon.protocol.vocabulary import (
    FINAL_STATUSES,
    REDRIVABLE_STATUSES,
    SUCCESS_STATUSES,
    Channel,
    Outcome,
    Priority,
    Status,
)

TYPE_CHECKING = False  # typing is for mypy only: a CLI process does not import it (~3 ms; issue 14)
if TYPE_CHECKING:  # the TypedDicts load on first use (``__getattr__`` below): a CLI process never needs them
    from typing import Any

    from daemon.protocol.group_shapes import (
        BatchJSON,
        BatchMemberJSON,
        BatchSendJSON,
        GroupJSON,
        GroupRemovedJSON,
    )
    from daemon.protocol.shapes import (
        OVERFLOW,
        AttemptFinishedEvent,
        AttemptJSON,
        AttemptStartedData,
        AttemptStartedEvent,
        AwaitingAckData,
        AwaitingAckEvent,
        AwaitingReceiptData,
        AwaitingReceiptEvent,
        BreakerEvent,
        BreakerEventData,
        BreakerJSON,
        ErrorJSON,
        ErrorReply,
        Event,
        LinkCreatedData,
        LinkCreatedEvent,
        LinkJSON,
        MemberJSON,
        NotificationCreatedEvent,
        NotificationJSON,
        NotificationStatusData,
        NotificationStatusEvent,
        NotificationSummaryJSON,
        OkReply,
        OverflowData,
        OverflowEvent,
        PausedData,
        PausedEvent,
        RecipientChangedEvent,
        RecipientChangedKind,
        RecipientJSON,
        RecipientRemovedData,
        RecipientRemovedEvent,
        RecipientTelegramData,
        RecipientTelegramEvent,
        RecipientTelegramKind,
        Reply,
        RequestJSON,
        SendResultJSON,
        SmsBudgetData,
        SmsBudgetEvent,
        SmsStatusJSON,
        StatusJSON,
        SubscribedJSON,
    )

MAX_LINE = 1024 * 1024  # one request may not exceed 1 MiB
OPS = (
    "ping", "status", "health", "pause", "resume",
    "send", "show", "list", "cancel", "retry",
    "recipient.add", "recipient.list", "recipient.show", "recipient.update", "recipient.remove",
    "recipient.link",
    "group.add", "group.list", "group.show", "group.update", "group.remove", "batch.show",
    "backup",
    "subscribe",
)
_KNOWN_OPS = frozenset(OPS)
_ENVELOPE = frozenset({"op", "params", "id"})


class ProtocolError(Exception):
    """A request that cannot be understood; the reply names the problem."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Request:
    """One decoded request. A plain slotted class, not a dataclass: ``dataclasses`` imports ``inspect``,
    which cost every CLI process ~10 ms of its ~80 ms budget (issue 14)."""

    __slots__ = ("id", "op", "params")

    def __init__(self, op: str, params: dict[str, Any] | None = None, id: Any = None) -> None:
        self.op = op
        self.params: dict[str, Any] = {} if params is None else params
        self.id = id

    def __repr__(self) -> str:
        return f"Request(op={self.op!r}, params={self.params!r}, id={self.id!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return (self.op, self.params, self.id) == (other.op, other.params, other.id)

    __hash__ = None  # type: ignore[assignment]  # params is a dict: unhashable, like the dataclass it replaces


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
    return request_from(data)


def request_from(data: Any) -> Request:
    """A parsed request line as a ``Request``: its envelope checked (the daemon's faster codec,
    ``daemon.api.wire``, parses the line itself and calls this)."""
    if not isinstance(data, dict):
        raise ProtocolError("a request must be a JSON object")
    op = data.get("op")
    if not isinstance(op, str):
        raise ProtocolError("missing 'op' (a string)", "op")
    if op not in _KNOWN_OPS:
        raise ProtocolError(f"unknown op {op!r}; known: {', '.join(OPS)}", "op")
    params = data.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ProtocolError("'params' must be a JSON object", "params")
    if not data.keys() <= _ENVELOPE:  # the set arithmetic and sort only for a request that has one
        unknown = sorted(set(data) - _ENVELOPE)
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
    return data  # type: ignore[return-value]


_LAZY = ("daemon.protocol.shapes", "daemon.protocol.group_shapes")


def __getattr__(name: str) -> Any:
    """``shapes`` and ``group_shapes`` (~60 TypedDicts, ~5 ms to build) are imported when one of their
    names is first asked for, not with the package: the CLI's 80 ms budget (issue 14) has no room for
    classes it only names in annotations."""
    for module in _LAZY:
        found = importlib.import_module(module)
        if hasattr(found, name):
            value = getattr(found, name)
            globals()[name] = value
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FINAL_STATUSES",
    "MAX_LINE",
    "OPS",
    "OVERFLOW",
    "REDRIVABLE_STATUSES",
    "SUCCESS_STATUSES",
    "UNSAFE",
    "UNSAFE_IN_JSON",
    "UNSAFE_KEEPING_NEWLINES",
    "AttemptFinishedEvent",
    "AttemptJSON",
    "AttemptStartedData",
    "AttemptStartedEvent",
    "AwaitingAckData",
    "AwaitingAckEvent",
    "AwaitingReceiptData",
    "AwaitingReceiptEvent",
    "BatchJSON",
    "BatchMemberJSON",
    "BatchSendJSON",
    "BreakerEvent",
    "BreakerEventData",
    "BreakerJSON",
    "Channel",
    "ClientError",
    "DaemonUnavailable",
    "ErrorJSON",
    "ErrorReply",
    "Event",
    "GroupJSON",
    "GroupRemovedJSON",
    "LinkCreatedData",
    "LinkCreatedEvent",
    "LinkJSON",
    "MemberJSON",
    "NotificationCreatedEvent",
    "NotificationJSON",
    "NotificationStatusData",
    "NotificationStatusEvent",
    "NotificationSummaryJSON",
    "OkReply",
    "Outcome",
    "OverflowData",
    "OverflowEvent",
    "PausedData",
    "PausedEvent",
    "Priority",
    "ProtocolError",
    "RecipientChangedEvent",
    "RecipientChangedKind",
    "RecipientJSON",
    "RecipientRemovedData",
    "RecipientRemovedEvent",
    "RecipientTelegramData",
    "RecipientTelegramEvent",
    "RecipientTelegramKind",
    "RemoteError",
    "Reply",
    "Request",
    "RequestJSON",
    "SendResultJSON",
    "SmsBudgetData",
    "SmsBudgetEvent",
    "SmsStatusJSON",
    "Status",
    "StatusJSON",
    "SubscribedJSON",
    "decode_event",
    "decode_reply",
    "decode_request",
    "encode",
    "error",
    "ok",
    "remote_error",
    "request_from",
    "visible",
]
