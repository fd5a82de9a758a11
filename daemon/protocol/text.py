"""Showing protocol text on a terminal safely (the CLI and the TUI)."""

from __future__ import annotations

import re
from collections.abc import Mapping

TYPE_CHECKING = False  # typing is for mypy only: a CLI process does not import it (~3 ms; issue 14)
if TYPE_CHECKING:
    from typing import Any

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


# -- the SMS caps in force -------------------------------------------------------------------------

def sms_summary(sms: Mapping[str, Any]) -> tuple[str, str, str]:
    """The ``sms`` key of a ``status`` reply as the CLI and the TUI show it: today's budget use
    (``120/500 segments today (24 %)``), the per-recipient caps (``caps 5/15m, 11/1h, 21/3h`` or
    ``caps off``) and the receipts mode (``receipts callback``)."""
    used = int(sms.get("budget_used_today") or 0)
    budget = sms.get("daily_budget")
    if isinstance(budget, int) and budget > 0:
        # floor: 99 % until the budget is really used up
        spent = f"{used}/{budget} segments today ({used * 100 // budget} %)"
    else:
        spent = f"{used} segments today (no budget)"
    limits = [str(limit) for limit in sms.get("recipient_limits") or []]
    caps = f"caps {', '.join(limits)} per recipient" if limits else "caps off"
    return spent, caps, f"receipts {sms.get('receipts') or 'off'}"
