"""Telegram's 4096-character message limit: split a long text into parts, on line boundaries.

Pure logic, no I/O. Telegram counts UTF-16 code units, so an emoji outside the BMP costs two and
is never cut in half. A text is split at the last newline that fits; a single line longer than the
limit is split at its last space that fits, else hard at the limit. Joining the parts with the
newlines (or spaces) they were split at gives the text back: nothing is dropped or added.
"""

from __future__ import annotations

TELEGRAM_MAX = 4096  # UTF-16 code units per message


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _fits(text: str, limit: int) -> int:
    """How many characters from the start of ``text`` fit in ``limit`` UTF-16 units."""
    used = 0
    for index, ch in enumerate(text):
        used += 2 if ord(ch) > 0xFFFF else 1
        if used > limit:
            return index
    return len(text)


def split_message(text: str, limit: int = TELEGRAM_MAX) -> list[str]:
    """``text`` as parts of at most ``limit`` UTF-16 units each (one part when it fits).

    The separator a part was cut at (a newline, else a space) ends that part, so
    ``"".join(parts) == text``; a part is never empty.
    """
    if limit < 2:
        raise ValueError("limit must be at least 2")
    parts: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        head = rest[: _fits(rest, limit)]
        cut = head.rfind("\n") + 1 or head.rfind(" ") + 1 or len(head)
        parts.append(rest[:cut])
        rest = rest[cut:]
    if rest or not parts:
        parts.append(rest)
    return parts
