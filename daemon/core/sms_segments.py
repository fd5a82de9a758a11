"""How many SMS segments a text costs: GSM-7 when every character fits, else UCS-2.

Pure logic, no I/O. The rules (3GPP TS 23.038 / 23.040):

* GSM-7: one segment holds 160 septets; a concatenated message loses 7 septets per segment to
  the user data header, leaving 153. Characters of the extension table (``^{}[]~|€\\`` and form
  feed) are sent as ESC + char and cost two septets, and a phone never splits such a pair.
* UCS-2 (any character outside GSM-7, e.g. Cyrillic or emoji): 70 UTF-16 code units in one
  segment, 67 per segment when concatenated. Characters outside the BMP (most emoji) are a
  surrogate pair: two units that are never split across segments.
"""

from __future__ import annotations

from collections.abc import Iterable

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
"""The GSM 03.38 default alphabet (without ESC, which only introduces an extension character)."""

GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
"""Characters of the extension table: ESC + char, two septets each."""

GSM7_SINGLE, GSM7_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67


def is_gsm7(text: str) -> bool:
    """True when every character of ``text`` can be sent in the GSM-7 alphabet."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _count(costs: Iterable[int], single: int, multi: int) -> int:
    """Segments needed for characters of the given costs, never splitting one character."""
    costs = list(costs)
    if sum(costs) <= single:
        return 1
    segments, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            segments, used = segments + 1, 0
        used += cost
    return segments


def sms_segments(text: str) -> int:
    """Number of SMS segments ``text`` is sent as (an empty text is still one message)."""
    if is_gsm7(text):
        return _count((2 if ch in GSM7_EXTENSION else 1 for ch in text), GSM7_SINGLE, GSM7_MULTI)
    return _count((2 if ord(ch) > 0xFFFF else 1 for ch in text), UCS2_SINGLE, UCS2_MULTI)
