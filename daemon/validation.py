"""Validation at the edge: turn untrusted request parameters into typed values, or raise
ValidationError naming the field. Shared by the socket API, the CLI and the HTTP API."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import email_validator
import phonenumbers

from daemon.errors import ValidationError
from daemon.models import Channel, NewNotification, Status

MAX_TEXT = 65_536
MAX_SUBJECT = 998  # RFC 5322 line limit
MAX_NAME = 200
MAX_KEY = 200
MAX_DEADLINE = timedelta(days=3653)  # ten years: further out is a mistake (and overflows datetime on read)


def _reject_unknown(params: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        name = unknown[0] or '""'  # an empty key is still a key the sender should see named
        raise ValidationError(name, f"unknown field (allowed: {', '.join(sorted(allowed))})")


def integer(params: Mapping[str, Any], field: str, *, required: bool = True, minimum: int = 1) -> int | None:
    value = params.get(field)
    if value is None:
        if required:
            raise ValidationError(field, "required")
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(field, "must be an integer")
    if value < minimum:
        raise ValidationError(field, f"must be >= {minimum}")
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
    return value


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
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValidationError(field, f"{value!r} is not a phone number in E.164 form, e.g. +14155550100") from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(field, f"{value!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def chat_id(value: Any, field: str = "telegram_chat_id") -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value == 0:
        raise ValidationError(field, "must be a non-zero integer (Telegram chat id)")
    return value


def status(value: Any, field: str = "status") -> Status | None:
    if value is None or value == "":
        return None
    try:
        return Status(str(value))
    except ValueError:
        raise ValidationError(field, f"unknown status {value!r} ({', '.join(s.value for s in Status)})") from None


def deadline(params: Mapping[str, Any], now: datetime) -> datetime | None:
    if params.get("deadline") is not None and params.get("expires_in") is not None:
        raise ValidationError("deadline", "give either deadline or expires_in, not both")
    if params.get("expires_in") is not None:
        seconds = params["expires_in"]
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not 0 < seconds <= _MAX_SECONDS:
            raise ValidationError("expires_in", f"must be a positive number of seconds, at most {_MAX_SECONDS:.0f}"
                                                " (ten years)")
        return now + timedelta(seconds=seconds)
    raw = params.get("deadline")
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(str(raw))
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


_MAX_SECONDS = MAX_DEADLINE.total_seconds()


SEND_FIELDS = {"recipient_id", "message", "subject", "chain", "idempotency_key", "deadline", "expires_in",
               "ack_timeout"}


def send_request(params: Mapping[str, Any], default_chain: tuple[Channel, ...], now: datetime) -> NewNotification:
    _reject_unknown(params, SEND_FIELDS)
    recipient_id = integer(params, "recipient_id")
    message = text(params, "message", required=True, max_length=MAX_TEXT)
    subject = text(params, "subject", required=False, max_length=MAX_SUBJECT)
    if subject is not None and ("\r" in subject or "\n" in subject):
        raise ValidationError("subject", "must be one line (no CR or LF)")
    key = text(params, "idempotency_key", required=False, max_length=MAX_KEY)
    ack = params.get("ack_timeout")
    if ack is not None and (not isinstance(ack, int | float) or isinstance(ack, bool) or ack <= 0):
        raise ValidationError("ack_timeout", "must be a positive number of seconds")
    assert recipient_id is not None and message is not None
    return NewNotification(
        recipient_id=recipient_id,
        text=message,
        chain=chain(params["chain"]) if params.get("chain") is not None else default_chain,
        subject=subject,
        idempotency_key=key or None,
        deadline=deadline(params, now),
        ack_timeout=float(ack) if ack is not None else None,
    )


RECIPIENT_FIELDS = {"name", "email", "phone", "telegram_chat_id", "opt_out"}


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
    return fields
