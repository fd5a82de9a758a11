"""Rules for the fields about people's time: a notification's ``priority``, a recipient's
``timezone`` (an IANA name zoneinfo knows) and ``quiet_hours`` (``HH:MM-HH:MM``, may cross midnight).
The window arithmetic itself is ``daemon.core.quiet_hours``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from daemon.api.requests.rules import Rule, invalid, valid_unicode, wrong_type
from daemon.core import quiet_hours as quiet
from daemon.core.models import Priority

PRIORITIES = [str(p) for p in Priority]
MAX_ZONE = 64
MAX_WINDOW = 32


@dataclass(frozen=True, slots=True)
class PriorityName(Rule):
    """low / normal / high / critical (lax: any case, ``""`` is ``normal``)."""

    optional: bool = True

    def check(self, value: Any, strict: bool) -> Priority:
        if strict and not isinstance(value, str):
            raise wrong_type(f"unknown priority {value!r} ({', '.join(PRIORITIES)})")
        if value == "" and not strict:
            return Priority.NORMAL
        try:
            return Priority(value if strict else str(value).lower())
        except ValueError:
            raise invalid(f"unknown priority {value!r} ({', '.join(PRIORITIES)})") from None

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": PRIORITIES}


@dataclass(frozen=True, slots=True)
class TimeZone(Rule):
    """An IANA time zone name (``Europe/Moscow``); empty is ``UTC``."""

    optional: bool = True

    def check(self, value: Any, strict: bool) -> str:
        if not isinstance(value, str) or len(value) > MAX_ZONE:
            raise wrong_type("must be an IANA time zone name, e.g. Europe/Moscow")
        if value == "":
            return "UTC"
        try:
            quiet.parse_timezone(valid_unicode(value))
        except ValueError as exc:
            raise invalid(str(exc)) from None
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "maxLength": MAX_ZONE}


@dataclass(frozen=True, slots=True)
class QuietWindow(Rule):
    """A daily window ``HH:MM-HH:MM``, normalised; ``""`` or ``off`` turn quiet hours off (None)."""

    optional: bool = True

    def check(self, value: Any, strict: bool) -> str | None:
        if not isinstance(value, str) or len(value) > MAX_WINDOW:
            raise wrong_type("must be a window like 22:00-07:00, or off")
        if value.strip().lower() in ("", "off"):
            return None
        try:
            return str(quiet.parse_window(value))
        except ValueError as exc:
            raise invalid(str(exc)) from None

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "maxLength": MAX_WINDOW}
