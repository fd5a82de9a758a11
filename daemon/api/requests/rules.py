"""The rules a request field obeys, each with its JSON schema: one object per kind of value.

A rule is a pydantic annotation (``Annotated[int, Integer()]``): it validates the raw value itself,
so the wording of every refusal is ours, and it states the JSON schema the HTTP API's OpenAPI
document shows for the field. Two modes, chosen by the caller (``parse(..., strict=...)``):

* lax (the socket API): the conveniences the CLI relies on, as documented in docs/protocol.md: a
  string of ASCII digits is read as an integer, ``"telegram,email"`` as a chain, any ISO 8601 time
  as a deadline, ``""`` as no value for an optional chat id, email, phone or status.
* strict (the HTTP API): JSON types exactly as the schema says, so that what the document refuses
  is refused, and a wrong JSON type is told apart (``wrong_type``: the HTTP API answers 400, 422 else).

A refusal raises ``PydanticCustomError`` with one of three types: ``missing`` (a required value is
absent or null), ``wrong_type`` and ``invalid``; the message is what the client reads after the
field name (``recipient_id: must be an integer``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import email_validator
import phonenumbers
from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

from daemon.core.models import MAX_WAIT, Channel, Status

INT64_MAX = 2**63 - 1
"""What an SQLite INTEGER holds: a larger integer cannot be stored, compared or even looked up."""
MAX_TEXT = 65_536
MAX_SUBJECT = 998  # RFC 5322 line limit
MAX_NAME = 200
MAX_KEY = 200
MAX_SEARCH = 200
MAX_PATH = 4096  # PATH_MAX
LIST_LIMIT_MAX = 1000
"""The longest page: the socket's ``list`` caps ``limit`` at this, the HTTP API refuses more."""
MAX_SECONDS = int(MAX_WAIT.total_seconds())
"""The longest ``expires_in`` and ``ack_timeout``: 315,619,200 s (ten years)."""
CHANNELS = [str(c) for c in Channel]
STATUSES = [str(s) for s in Status]
INTEGER_TEXT = re.compile(r"-?[0-9]{1,30}")  # ASCII only: "²".isdigit() is True, int("²") is not
# RFC 3339 with the years the store can hold (its timestamps are floats turned back into datetimes)
DEADLINE_PATTERN = (
    r"^(19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
_DEADLINE = re.compile(DEADLINE_PATTERN)
_CHANNEL_NAMES = ", ".join(CHANNELS)


def missing() -> PydanticCustomError:
    return PydanticCustomError("missing", "required")


def wrong_type(message: str) -> PydanticCustomError:
    return PydanticCustomError("wrong_type", message)


def invalid(message: str) -> PydanticCustomError:
    return PydanticCustomError("invalid", message)


def valid_unicode(value: str) -> str:
    """``value`` if it is valid Unicode. JSON's ``\\ud800`` escape decodes to a lone surrogate, which
    no database, mail server or terminal can take (encoding it raises): refuse it here, by name."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise invalid(f"not valid Unicode (a lone surrogate at character {exc.start})") from None
    return value


def strict(info: core_schema.ValidationInfo) -> bool:
    """Whether the caller asked for strict mode (``parse(..., strict=True)``: the HTTP API)."""
    return bool(info.context and info.context.get("strict"))


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` that also takes null (an enum must list it too, or null is still refused)."""
    out = {**schema, "type": [schema["type"], "null"]}
    if "enum" in schema:
        out["enum"] = [*schema["enum"], None]
    return out


class Rule:
    """Base of the rules: ``check`` a value that is not None; None is refused (``missing``) unless
    ``optional``, in which case it means "not given" (or, for a recipient's contact, "clear it")."""

    optional: bool = False

    def check(self, value: Any, strict: bool) -> Any:
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def validate(self, value: Any, info: core_schema.ValidationInfo) -> Any:
        if value is None:
            if self.optional:
                return None
            raise missing()
        return self.check(value, strict(info))

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.with_info_plain_validator_function(self.validate)

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        own = self.schema()
        return _nullable(own) if self.optional else own


def _as_int(value: Any, strict: bool) -> Any:
    """A decimal string (``"42"``, as a CLI sends it) as an int, except in strict mode."""
    if not strict and isinstance(value, str) and INTEGER_TEXT.fullmatch(value.strip()):
        return int(value)
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class Integer(Rule):
    """An integer ``minimum <= value <= maximum``: by default an id (1 to SQLite's 2**63 - 1)."""

    minimum: int = 1
    maximum: int = INT64_MAX
    optional: bool = False

    def check(self, value: Any, strict: bool) -> int:
        value = _as_int(value, strict)
        if not _is_int(value):
            raise wrong_type("must be an integer")
        if not self.minimum <= value <= self.maximum:
            raise invalid(f"must be between {self.minimum} and {self.maximum}")
        return int(value)

    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}


@dataclass(frozen=True, slots=True)
class ChatId(Rule):
    """A Telegram chat id: a non-zero integer within +-(2**63 - 1) (Telegram's own fit in 52 bits)."""

    optional: bool = True

    def check(self, value: Any, strict: bool) -> int | None:
        if value == "" and not strict:
            return None
        value = _as_int(value, strict)
        if not _is_int(value):
            raise wrong_type("must be a non-zero integer (Telegram chat id)")
        if value == 0:
            raise invalid("must be a non-zero integer (Telegram chat id)")
        if not -INT64_MAX <= value <= INT64_MAX:
            raise invalid(f"must be between {-INT64_MAX} and {INT64_MAX}")
        return int(value)

    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": -INT64_MAX, "maximum": INT64_MAX}


@dataclass(frozen=True, slots=True)
class Seconds(Rule):
    """A duration in seconds: a finite number ``0 < value <= MAX_SECONDS`` (NaN and infinity refused)."""

    optional: bool = True

    def check(self, value: Any, strict: bool) -> float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise wrong_type("must be a number of seconds")
        # compared as it is: float() of a huge int would overflow
        if (isinstance(value, float) and not math.isfinite(value)) or not 0 < value <= MAX_SECONDS:
            raise invalid(f"must be a finite number of seconds, more than 0 and at most {MAX_SECONDS}")
        return float(value)

    def schema(self) -> dict[str, Any]:
        return {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_SECONDS}


@dataclass(frozen=True, slots=True)
class Text(Rule):
    """A string of at most ``max_length`` characters, valid Unicode. Required text (``optional`` false)
    must not be blank; ``one_line`` text has no CR or LF (an email subject: header injection)."""

    max_length: int
    optional: bool = False
    one_line: bool = False

    def check(self, value: Any, strict: bool) -> str:
        if not isinstance(value, str):
            raise wrong_type("must be a string")
        if not self.optional and not value.strip():
            raise invalid("must not be empty")
        if len(value) > self.max_length:
            raise invalid(f"too long ({len(value)} characters, at most {self.max_length})")
        valid_unicode(value)
        if self.one_line and ("\r" in value or "\n" in value):
            raise invalid("must be one line (no CR or LF)")
        return value

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string", "maxLength": self.max_length}
        if not self.optional:
            schema["minLength"] = 1
        if self.one_line:
            schema["pattern"] = r"^[^\r\n]*$"
        return schema


def channels(value: Any, strict: bool, *, empty: bool) -> tuple[Channel, ...]:
    """A list of distinct channels (lax: also ``"telegram,email"`` and any case)."""
    if isinstance(value, str) and not strict:
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple):
        raise wrong_type(f"must be a non-empty list of channels ({_CHANNEL_NAMES})")
    if not value and not empty:
        raise invalid(f"must be a non-empty list of channels ({_CHANNEL_NAMES})")
    found: list[Channel] = []
    for item in value:
        if strict and not isinstance(item, str):
            raise wrong_type(f"unknown channel {item!r} ({_CHANNEL_NAMES})")
        try:
            channel = Channel(item if strict else str(item).lower())
        except ValueError:
            raise invalid(f"unknown channel {item!r} ({_CHANNEL_NAMES})") from None
        if channel in found:
            raise invalid(f"{channel} appears twice")
        found.append(channel)
    return tuple(found)


@dataclass(frozen=True, slots=True)
class Chain(Rule):
    """The channels to try, in order; not given: the daemon's ``[chain] default``."""

    optional: bool = True

    def check(self, value: Any, strict: bool) -> tuple[Channel, ...]:
        return channels(value, strict, empty=False)

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "string", "enum": CHANNELS}, "minItems": 1, "uniqueItems": True}


@dataclass(frozen=True, slots=True)
class OptOut(Rule):
    """The channels a recipient refuses; null or empty (lax: anything falsy) refuses none."""

    optional: bool = False  # null is a value here (no channel refused): the schema below says so

    def validate(self, value: Any, info: core_schema.ValidationInfo) -> frozenset[Channel]:
        typed = strict(info)
        if value is None or (not typed and not value):
            return frozenset()
        return frozenset(channels(value, typed, empty=True))

    def schema(self) -> dict[str, Any]:
        return _nullable({"type": "array", "items": {"type": "string", "enum": CHANNELS}, "uniqueItems": True})


def _contact(value: Any, strict: bool) -> str | None:
    if value == "":
        return None
    if not isinstance(value, str):
        raise wrong_type("must be a string")
    return valid_unicode(value)


@dataclass(frozen=True, slots=True)
class Email(Rule):
    """An email address, normalised (the domain lower-cased); null or ``""``: none. Any syntactically
    valid address, internal ones included (``ops@corp.local``, ``root@localhost``): the mail server
    decides deliverability, and its 5xx fails the attempt over like any refusal. Malformed syntax, a
    display name and line breaks (header injection) are refused."""

    optional: bool = True

    def check(self, value: Any, strict: bool) -> str | None:
        address = _contact(value, strict)
        if address is None:
            return None
        # email-validator assumes globally routable mail: it wants a dot in the domain and refuses the
        # special-use names (.local, .test, localhost, home.arpa...). Its documented switch for the latter
        # is this module-level list, read on each call; nothing else in the process validates addresses.
        email_validator.SPECIAL_USE_DOMAIN_NAMES.clear()
        try:
            return email_validator.validate_email(address, check_deliverability=False,
                                                  globally_deliverable=False).normalized
        except email_validator.EmailNotValidError as exc:
            raise invalid(str(exc)) from None

    def schema(self) -> dict[str, Any]:
        return {"type": "string"}


@dataclass(frozen=True, slots=True)
class Phone(Rule):
    """A phone number in E.164 (``+`` and country code), normalised; null or ``""``: none."""

    optional: bool = True

    def check(self, value: Any, strict: bool) -> str | None:
        number = _contact(value, strict)
        if number is None:
            return None
        try:
            parsed = phonenumbers.parse(number, None)
        except phonenumbers.NumberParseException:
            raise invalid(f"{number!r} is not a phone number in E.164 form, e.g. +14155550100") from None
        if not phonenumbers.is_valid_number(parsed):
            raise invalid(f"{number!r} is not a valid phone number")
        return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))

    def schema(self) -> dict[str, Any]:
        return {"type": "string"}


@dataclass(frozen=True, slots=True)
class StatusName(Rule):
    """A notification status (lax: ``""`` is none)."""

    optional: bool = True

    def check(self, value: Any, strict: bool) -> Status | None:
        if strict and not isinstance(value, str):
            raise wrong_type(f"unknown status {value!r} ({', '.join(STATUSES)})")
        if value == "" and not strict:
            return None
        try:
            return Status(value if strict else str(value))
        except ValueError:
            raise invalid(f"unknown status {value!r} ({', '.join(STATUSES)})") from None

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": STATUSES}


@dataclass(frozen=True, slots=True)
class Deadline(Rule):
    """A point in time (no offset: UTC). Strict: RFC 3339 with a year the store can hold; lax: any
    ISO 8601 time. Whether it is within ten years of now is checked when it is used."""

    optional: bool = True

    def check(self, value: Any, strict: bool) -> datetime:
        if not isinstance(value, str):
            raise wrong_type("must be an ISO 8601 time (a string), e.g. 2026-01-31T12:00:00Z")
        if strict and not _DEADLINE.fullmatch(value):
            raise invalid("must be an RFC 3339 time between 1970 and 9998, e.g. 2026-01-31T12:00:00Z")
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise invalid("must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z") from None
        return when if when.tzinfo else when.replace(tzinfo=UTC)

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": DEADLINE_PATTERN}


@dataclass(frozen=True, slots=True)
class Cursor(Rule):
    """An HTTP list cursor: opaque to clients; today the id of the last notification on a page."""

    optional: bool = True

    def check(self, value: Any, strict: bool) -> int:
        if not isinstance(value, str):
            raise wrong_type("must be a string")
        if not (value.isascii() and value.isdigit() and len(value) <= 19 and 1 <= int(value) <= INT64_MAX):
            raise invalid("not a cursor this API returned")
        return int(value)

    def schema(self) -> dict[str, Any]:
        return {"type": "string"}


@dataclass(frozen=True, slots=True)
class Names(Rule):
    """A list of strings (event kinds)."""

    optional: bool = True

    def check(self, value: Any, strict: bool) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise wrong_type("must be a list of strings")
        return tuple(valid_unicode(item) for item in value)

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "string"}}
