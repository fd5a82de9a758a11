"""The socket protocol: newline-delimited JSON over a Unix stream socket.

Request:  {"id": 1, "op": "send", "params": {"recipient_id": 1, "message": "hi"}}
Reply:    {"id": 1, "ok": true, "result": {...}}
          {"id": 1, "ok": false, "error": {"code": "invalid", "message": "...", "field": "recipient_id"}}
Events (after a successful ``subscribe``): {"event": "attempt.finished", "at": "...", "data": {...}}

This module is the whole contract between the daemon and its clients (CLI, TUI): both sides
import it, and the TUI imports nothing else from the daemon. See docs/protocol.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

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


def ok(request_id: Any, result: Any) -> dict[str, Any]:
    return {"id": request_id, "ok": True, "result": result}


def error(request_id: Any, code: str, message: str, field: str | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        err["field"] = field
    return {"id": request_id, "ok": False, "error": err}


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
