"""Validation at the edge: turn untrusted request parameters into typed values, or raise
ValidationError naming the field. Shared by the socket API, the CLI and the HTTP API."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import email_validator
import phonenumbers

from daemon.core import quiet_hours as quiet
from daemon.core.errors import ValidationError
from daemon.core.models import MAX_WAIT, Channel, NewNotification, Priority, Status

MAX_TEXT = 65_536
MAX_SUBJECT = 998  # RFC 5322 line limit
MAX_NAME = 200
MAX_KEY = 200
MAX_DEADLINE = MAX_WAIT  # ten years: further out is a mistake (and overflows datetime on read)
MAX_SECONDS = MAX_WAIT.total_seconds()
"""The longest ``expires_in`` and ``ack_timeout``: 315,619,200 s (ten years)."""
INT64_MAX = 2**63 - 1
"""What an SQLite INTEGER holds: a larger integer cannot be stored, compared or even looked up."""
_DIGITS = re.compile(r"-?[0-9]{1,30}")  # ASCII only: "²".isdigit() is True, int("²") is not


def unicode_text(value: str, field: str) -> str:
    """``value`` if it is valid Unicode. JSON's ``\\ud800`` escape decodes to a lone surrogate, which
    no database, mail server or terminal can take (encoding it raises): refuse it here, by name."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(field, f"not valid Unicode (a lone surrogate at character {exc.start})") from None
    return value


def seconds(value: Any, field: str, *, maximum: float = MAX_SECONDS) -> float:
    """A duration in seconds: a finite number ``0 < value <= maximum`` (NaN and infinity refused)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValidationError(field, "must be a number of seconds")
    # NaN compares false and infinity is above any finite maximum; a huge int compares exactly
    # (math.isfinite() or float() of it would raise OverflowError)
    if not 0 < value <= maximum:
        raise ValidationError(field, f"must be a finite number of seconds, more than 0 and at most {maximum:.0f}")
    return float(value)


def _reject_unknown(params: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        # an empty key is still a key the sender should see named; a broken one is named escaped
        name = unknown[0].encode("utf-8", "backslashreplace").decode() or '""'
        raise ValidationError(name, f"unknown field (allowed: {', '.join(sorted(allowed))})")


def _as_int(value: Any) -> Any:
    """A decimal string (``"42"``, as a CLI or query string sends it) as an int; anything else as it is."""
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        return int(value)
    return value


def integer(
    params: Mapping[str, Any], field: str, *, required: bool = True, minimum: int = 1, maximum: int = INT64_MAX
) -> int | None:
    """An integer ``minimum <= value <= maximum`` (at most SQLite's 2**63 - 1), or None when absent."""
    value = params.get(field)
    if value is None:
        if required:
            raise ValidationError(field, "required")
        return None
    value = _as_int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(field, "must be an integer")
    if not minimum <= value <= maximum:
        raise ValidationError(field, f"must be between {minimum} and {maximum}")
    return value


def text(params: Mapping[str, Any], field: str, *, required: bool, max_length: int) -> str | None:
    value = params.get(field)
    if value is None:
        if required:
            raise ValidationError(field, "required")
        return None
    if not isinstance(value, str):
        raise ValidationError(field, "must be a string")
    if required and not value.strip():
        raise ValidationError(field, "must not be empty")
    if len(value) > max_length:
        raise ValidationError(field, f"too long ({len(value)} characters, at most {max_length})")
    return unicode_text(value, field)


def chain(value: Any, field: str = "chain") -> tuple[Channel, ...]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple) or not value:
        raise ValidationError(field, "must be a non-empty list of channels (telegram, email, sms)")
    channels: list[Channel] = []
    for item in value:
        try:
            channel = Channel(str(item).lower())
        except ValueError:
            raise ValidationError(field, f"unknown channel {item!r} (telegram, email, sms)") from None
        if channel in channels:
            raise ValidationError(field, f"{channel} appears twice")
        channels.append(channel)
    return tuple(channels)


def email(value: Any, field: str = "email") -> str | None:
    """Any syntactically valid address, internal ones included (``ops@corp.local``, ``root@localhost``):
    the mail server decides deliverability, and its 5xx fails the attempt over like any refusal.
    Malformed syntax, a display name and line breaks (header injection) are refused."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValidationError(field, "must be a string")
    unicode_text(value, field)
    # email-validator assumes globally routable mail: it wants a dot in the domain and refuses the
    # special-use names (.local, .test, localhost, home.arpa...). Its documented switch for the latter
    # is this module-level list, read on each call; nothing else in the process validates addresses.
    email_validator.SPECIAL_USE_DOMAIN_NAMES.clear()
    try:
        return email_validator.validate_email(value, check_deliverability=False, globally_deliverable=False).normalized
    except email_validator.EmailNotValidError as exc:
        raise ValidationError(field, str(exc)) from None


def phone(value: Any, field: str = "phone") -> str | None:
    """A phone number in E.164 (``+`` and country code), normalised."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValidationError(field, "must be a string")
    unicode_text(value, field)
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValidationError(field, f"{value!r} is not a phone number in E.164 form, e.g. +14155550100") from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(field, f"{value!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def chat_id(value: Any, field: str = "telegram_chat_id") -> int | None:
    """A Telegram chat id: a non-zero integer within +-(2**63 - 1) (Telegram's own fit in 52 bits)."""
    if value is None or value == "":
        return None
    value = _as_int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value == 0:
        raise ValidationError(field, "must be a non-zero integer (Telegram chat id)")
    if not -INT64_MAX <= value <= INT64_MAX:
        raise ValidationError(field, f"must be between {-INT64_MAX} and {INT64_MAX}")
    return value


def status(value: Any, field: str = "status") -> Status | None:
    if value is None or value == "":
        return None
    try:
        return Status(str(value))
    except ValueError:
        raise ValidationError(field, f"unknown status {value!r} ({', '.join(s.value for s in Status)})") from None


def priority(value: Any, field: str = "priority") -> Priority:
    """low / normal / high / critical; absent (or empty) is ``normal``."""
    if value is None or value == "":
        return Priority.NORMAL
    try:
        return Priority(str(value).lower())
    except ValueError:
        raise ValidationError(field, f"unknown priority {value!r} ({', '.join(p.value for p in Priority)})") from None


def timezone(value: Any, field: str = "timezone") -> str:
    """An IANA time zone name zoneinfo knows (``Europe/Moscow``); empty is ``UTC``."""
    if value is None or value == "":
        return "UTC"
    if not isinstance(value, str) or len(value) > 64:
        raise ValidationError(field, "must be an IANA time zone name, e.g. Europe/Moscow")
    try:
        quiet.parse_timezone(unicode_text(value, field))
    except ValueError as exc:
        raise ValidationError(field, str(exc)) from None
    return value


def quiet_hours(value: Any, field: str = "quiet_hours") -> str | None:
    """A daily window ``HH:MM-HH:MM`` (``22:00-07:00`` crosses midnight), normalised; None, empty or
    ``off`` turn quiet hours off."""
    if value is None or value == "" or (isinstance(value, str) and value.strip().lower() == "off"):
        return None
    if not isinstance(value, str) or len(value) > 32:
        raise ValidationError(field, "must be a window like 22:00-07:00, or off")
    try:
        return str(quiet.parse_window(value))
    except ValueError as exc:
        raise ValidationError(field, str(exc)) from None


def deadline(params: Mapping[str, Any], now: datetime) -> datetime | None:
    if params.get("deadline") is not None and params.get("expires_in") is not None:
        raise ValidationError("deadline", "give either deadline or expires_in, not both")
    if params.get("expires_in") is not None:
        return now + timedelta(seconds=seconds(params["expires_in"], "expires_in"))
    raw = params.get("deadline")
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ValidationError("deadline", "must be an ISO 8601 time (a string), e.g. 2026-01-31T12:00:00Z")
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ValidationError("deadline", "must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z") from None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    try:
        in_range = abs(when - now) <= MAX_DEADLINE
    except OverflowError:  # year 1 or 9999 with an offset
        in_range = False
    if not in_range:
        raise ValidationError("deadline", "must be within ten years of now")
    return when


SEND_FIELDS = {"recipient_id", "message", "subject", "chain", "idempotency_key", "deadline", "expires_in",
               "ack_timeout", "priority"}


def send_request(params: Mapping[str, Any], default_chain: tuple[Channel, ...], now: datetime) -> NewNotification:
    _reject_unknown(params, SEND_FIELDS)
    recipient_id = integer(params, "recipient_id")
    message = text(params, "message", required=True, max_length=MAX_TEXT)
    subject = text(params, "subject", required=False, max_length=MAX_SUBJECT)
    if subject is not None and ("\r" in subject or "\n" in subject):
        raise ValidationError("subject", "must be one line (no CR or LF)")
    key = text(params, "idempotency_key", required=False, max_length=MAX_KEY)
    ack = seconds(params["ack_timeout"], "ack_timeout") if params.get("ack_timeout") is not None else None
    when = deadline(params, now)  # also holds expires_in to its range
    expires_in = float(params["expires_in"]) if params.get("expires_in") is not None else None
    assert recipient_id is not None and message is not None
    return NewNotification(
        recipient_id=recipient_id,
        text=message,
        chain=chain(params["chain"]) if params.get("chain") is not None else default_chain,
        subject=subject,
        idempotency_key=key or None,
        deadline=when,
        ack_timeout=ack,
        expires_in=expires_in,
        priority=priority(params.get("priority")),
    )


RECIPIENT_FIELDS = {"name", "email", "phone", "telegram_chat_id", "opt_out", "timezone", "quiet_hours"}


def recipient_fields(params: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    """Fields for a new recipient (``partial=False``: name required) or an update."""
    _reject_unknown(params, RECIPIENT_FIELDS | ({"id"} if partial else set()))
    fields: dict[str, Any] = {}
    if not partial or "name" in params:
        fields["name"] = text(params, "name", required=True, max_length=MAX_NAME)
    if "email" in params:
        fields["email"] = email(params["email"])
    if "phone" in params:
        fields["phone"] = phone(params["phone"])
    if "telegram_chat_id" in params:
        fields["telegram_chat_id"] = chat_id(params["telegram_chat_id"])
    if "opt_out" in params:
        value = params["opt_out"]
        fields["opt_out"] = frozenset(chain(value, "opt_out")) if value else frozenset()
    if "timezone" in params:
        fields["timezone"] = timezone(params["timezone"])
    if "quiet_hours" in params:
        fields["quiet_hours"] = quiet_hours(params["quiet_hours"])
    return fields
