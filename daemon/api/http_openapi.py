"""The HTTP API's OpenAPI 3.1 document, and the checker that holds requests to it.

The document is the contract: ``daemon.api.http_api`` checks every body, path and query parameter
against the schemas here before calling the service, so what the document says is refused is
refused (400 for a wrong JSON type, 422 for a broken constraint). Meaning the schema cannot
express (a phone number's numbering plan, a calendar date) is checked by ``daemon.api.validation``
and is also answered 422. Limits come from ``daemon.api.validation`` so there is one number for each.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from daemon import __version__
from daemon.api.validation import MAX_KEY, MAX_NAME, MAX_SUBJECT, MAX_TEXT
from daemon.core.models import Channel, Outcome, Priority, Status

INT64_MAX = 2**63 - 1
LIST_LIMIT_MAX = 1000  # the service's cap; the HTTP API refuses more rather than silently capping
CHANNELS = [str(c) for c in Channel]
# RFC 3339 with the years the store can hold (its timestamps are floats turned back into datetimes)
DEADLINE_PATTERN = (
    r"^(19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
NOT_BLANK = r"\S"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "type": [schema["type"], "null"]}


_ID = {"type": "integer", "minimum": 1, "maximum": INT64_MAX}
_TIME = {"type": "string", "format": "date-time"}
_CHANNEL = {"type": "string", "enum": CHANNELS}
_CHAIN = {"type": "array", "items": _CHANNEL, "minItems": 1, "uniqueItems": True}
_RECIPIENT_FIELDS: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME, "pattern": NOT_BLANK},
    "email": {"type": ["string", "null"], "description": "An address; empty or null: none."},
    "phone": {"type": ["string", "null"], "description": "E.164, e.g. +14155550100; empty or null: none."},
    "telegram_chat_id": {"type": ["integer", "null"], "minimum": -INT64_MAX, "maximum": INT64_MAX,
                         "description": "Non-zero Telegram chat id; null: not linked."},
    "opt_out": {"type": ["array", "null"], "items": _CHANNEL, "uniqueItems": True,
                "description": "Channels this recipient refuses."},
    "timezone": {"type": ["string", "null"], "maxLength": 64,
                 "description": "IANA time zone quiet hours are read in, e.g. Europe/Moscow; empty or null: UTC."},
    "quiet_hours": {"type": ["string", "null"], "maxLength": 32,
                    "description": "Daily window HH:MM-HH:MM on the recipient's clock (22:00-07:00 crosses"
                                   " midnight): below-high notifications are held until it ends. off, empty or"
                                   " null: none."},
}
_PRIORITY = {"type": "string", "enum": [str(p) for p in Priority]}

SCHEMAS: dict[str, dict[str, Any]] = {
    "SendRequest": {
        "type": "object", "additionalProperties": False, "required": ["recipient_id", "message"],
        "properties": {
            "recipient_id": _ID,
            "message": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT, "pattern": NOT_BLANK},
            "subject": {"type": "string", "maxLength": MAX_SUBJECT, "pattern": r"^[^\r\n]*$",
                        "description": "Email subject; one line."},
            "chain": {**_CHAIN, "description": "Channels to try in order; default: the daemon's [chain]."},
            "idempotency_key": {"type": "string", "maxLength": MAX_KEY,
                                "description": "A repeat with the same key and the same fields returns the first"
                                               " notification (200); the same key with other fields is 409."},
            "deadline": {"type": "string", "pattern": DEADLINE_PATTERN,
                         "description": "RFC 3339 time after which delivery is abandoned (status expired)."},
            "priority": {**_PRIORITY, "description": "Default normal. high and critical are not held by quiet"
                                                     " hours; a backlog is claimed higher priority first."},
        },
    },
    "LegacySendRequest": {
        "type": "object", "required": ["recipient", "message"],
        "description": "The body the replaced Django service took; other fields are ignored, as it did.",
        "properties": {
            "recipient": _ID,
            "message": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT, "pattern": NOT_BLANK},
            "channels_chain": _CHAIN,
        },
    },
    "RecipientCreate": {"type": "object", "additionalProperties": False, "required": ["name"],
                        "properties": _RECIPIENT_FIELDS},
    "RecipientUpdate": {"type": "object", "additionalProperties": False, "properties": _RECIPIENT_FIELDS},
    "Attempt": {
        "type": "object",
        "required": ["id", "notification_id", "channel", "outcome", "error", "provider_message_id",
                     "started_at", "finished_at", "retry_at", "duration_ms"],
        "properties": {
            "id": {"type": "integer"}, "notification_id": {"type": "integer"}, "channel": _CHANNEL,
            "outcome": {"type": ["string", "null"], "description": "null while in flight",
                        "enum": [*(str(o) for o in Outcome), None]},
            "error": {"type": ["string", "null"]}, "provider_message_id": {"type": ["string", "null"]},
            "started_at": _TIME, "finished_at": _nullable(_TIME), "retry_at": _nullable(_TIME),
            "duration_ms": {"type": ["number", "null"]},
        },
    },
    "Notification": {
        "type": "object",
        "required": ["id", "recipient_id", "text", "subject", "chain", "status", "priority", "idempotency_key",
                     "channel",
                     "next_attempt_at", "deadline", "ack_timeout", "created_at", "updated_at",
                     "attempt_count", "attempts"],
        "properties": {
            "id": {"type": "integer"}, "recipient_id": {"type": "integer"}, "text": {"type": "string"},
            "subject": {"type": ["string", "null"]}, "chain": {"type": "array", "items": _CHANNEL},
            "status": {"type": "string", "enum": [str(s) for s in Status]},
            "priority": _PRIORITY,
            "idempotency_key": {"type": ["string", "null"]},
            "channel": {"type": ["string", "null"], "enum": [*CHANNELS, None],
                        "description": "The channel that delivered it, else the one being tried."},
            "next_attempt_at": _nullable(_TIME), "deadline": _nullable(_TIME),
            "ack_timeout": {"type": ["number", "null"]}, "created_at": _TIME, "updated_at": _TIME,
            "attempt_count": {"type": "integer"}, "attempts": {"type": "array", "items": _ref("Attempt")},
        },
    },
    "LegacyNotification": {
        "allOf": [_ref("Notification"), {
            "type": "object", "required": ["recipient", "message", "channels_chain"],
            "properties": {"recipient": {"type": "integer"}, "message": {"type": "string"},
                           "channels_chain": {"type": "array", "items": _CHANNEL}},
        }],
    },
    "NotificationPage": {
        "type": "object", "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": _ref("Notification")},
            "next_cursor": {"type": ["string", "null"],
                            "description": "Pass as cursor for the next (older) page; null: no more."},
        },
    },
    "Recipient": {
        "type": "object",
        "required": ["id", "name", "email", "phone", "telegram_chat_id", "opt_out", "telegram_blocked",
                     "telegram_state", "timezone", "quiet_hours", "created_at"],
        "properties": {
            "id": {"type": "integer"}, "name": {"type": "string"}, "email": {"type": ["string", "null"]},
            "phone": {"type": ["string", "null"]}, "telegram_chat_id": {"type": ["integer", "null"]},
            "opt_out": {"type": "array", "items": _CHANNEL}, "telegram_blocked": {"type": "boolean"},
            "telegram_state": {"type": "string", "enum": ["linked", "not linked", "opted out", "blocked"]},
            "timezone": {"type": "string"}, "quiet_hours": {"type": ["string", "null"]},
            "created_at": _TIME,
        },
    },
    "Removed": {"type": "object", "required": ["id", "removed"],
                "properties": {"id": {"type": "integer"}, "removed": {"type": "boolean", "const": True}}},
    "Link": {
        "type": "object", "required": ["url", "token", "expires_at"],
        "description": "A single-use opt-in link: the Telegram chat that opens it is linked to the recipient.",
        "properties": {"url": {"type": "string", "description": "https://t.me/<bot>?start=<token>"},
                       "token": {"type": "string"}, "expires_at": _TIME, "recipient_id": {"type": "integer"},
                       "bot": {"type": "string"}},
    },
    "Errors": {
        "type": "object", "required": ["errors"],
        "properties": {"errors": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["field", "message"],
            "properties": {"message": {"type": "string"},
                           "field": {"type": ["string", "null"], "description": "null: the whole request"}},
        }}},
    },
    "LegacyErrors": {
        "type": "object", "description": "As Django REST framework answered: field -> messages, or detail.",
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
        "properties": {"detail": {"type": "string"}},
    },
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
}

QUERY_SCHEMAS: dict[str, dict[str, Any]] = {
    "id": {"type": "object", "required": ["id"], "properties": {"id": _ID}},
    "list": {"type": "object", "additionalProperties": False, "properties": {
        "status": {"type": "string", "enum": [str(s) for s in Status]},
        "limit": {"type": "integer", "minimum": 1, "maximum": LIST_LIMIT_MAX, "default": 50},
        "cursor": {"type": "string", "description": "next_cursor of the previous page (opaque)."},
    }},
}


def _reply(description: str, schema: str | None = None) -> dict[str, Any]:
    if schema is None:
        return {"description": description}
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


_COMMON = {
    "401": {**_reply("Missing or wrong bearer token (no detail is given)", "Error"),
            "headers": {"WWW-Authenticate": {"required": True, "schema": {"type": "string", "const": "Bearer"}}}},
    "503": _reply("The database refused the operation; try again", "Error"),
}
_BAD = {"400": _reply("Malformed JSON or a wrong JSON type; names each field", "Errors"),
        "422": _reply("A value was refused; names each field", "Errors")}
_BODY_TOO_LARGE = {"413": _reply("The body is larger than the limit", "Error")}
_MISSING = {"404": _reply("No such notification or recipient", "Error")}
_CHAT_TAKEN = {"409": _reply("The Telegram chat belongs to another recipient", "Error")}


def _params(names: list[str], where: str, schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": n, "in": where, "required": where == "path", "schema": schema["properties"][n]}
            for n in names]


def _op(operation_id: str, summary: str, ok: dict[str, dict[str, Any]], *, body: str | None = None,
        path_id: bool = False, query: list[str] | None = None, extra: dict[str, dict[str, Any]] | None = None,
        refusals: dict[str, dict[str, Any]] = _BAD) -> dict[str, Any]:
    """One operation; ``operation_id`` is the name of its handler in ``daemon.api.http_api.HttpApi``."""
    responses = {**ok, **_COMMON, **(_MISSING if path_id else {}), **(extra or {})}
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary, "responses": responses}
    params = _params(["id"], "path", QUERY_SCHEMAS["id"]) if path_id else []
    params += _params(query or [], "query", QUERY_SCHEMAS["list"])
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
        responses.update(_BODY_TOO_LARGE)
    if params or body is not None:
        responses.update(refusals)
    return op


PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/notifications": {
        "post": _op("send", "Queue a notification", {
            "202": _reply("Queued", "Notification"),
            "200": _reply("A repeat of an idempotency_key: the first notification", "Notification"),
        }, body="SendRequest", extra={**_MISSING, "409": _reply(
            "The idempotency_key was used for a notification with other fields", "Error")}),
        "get": _op("list_notifications", "List notifications, newest first",
                   {"200": _reply("A page", "NotificationPage")}, query=["status", "limit", "cursor"]),
    },
    "/api/v1/notifications/{id}": {
        "get": _op("show", "A notification with its attempts", {"200": _reply("Found", "Notification")},
                   path_id=True),
    },
    "/api/v1/notifications/{id}/cancel": {
        "post": _op("cancel", "Cancel a notification that is not final",
                    {"200": _reply("Cancelled", "Notification")}, path_id=True,
                    extra={"409": _reply("Already final", "Error")}),
    },
    "/api/v1/recipients": {
        "get": _op("list_recipients", "List recipients", {"200": {"description": "All recipients", "content": {
            "application/json": {"schema": {"type": "array", "items": _ref("Recipient")}}}}}),
        "post": _op("add_recipient", "Add a recipient", {"201": _reply("Added", "Recipient")},
                    body="RecipientCreate", extra=_CHAT_TAKEN),
    },
    "/api/v1/recipients/{id}": {
        "get": _op("show_recipient", "A recipient", {"200": _reply("Found", "Recipient")}, path_id=True),
        "patch": _op("update_recipient", "Change some of a recipient's fields",
                     {"200": _reply("Updated", "Recipient")}, path_id=True, body="RecipientUpdate",
                     extra=_CHAT_TAKEN),
        "delete": _op("remove_recipient", "Remove a recipient", {"200": _reply("Removed", "Removed")},
                      path_id=True, extra={"409": _reply("The recipient has unfinished notifications", "Error")}),
    },
    "/api/v1/recipients/{id}/link": {
        "post": _op("link_recipient", "Make a Telegram opt-in link for a recipient",
                    {"200": _reply("The link", "Link")}, path_id=True, extra={
                        "409": _reply("The Telegram bot is not running ([telegram] enabled = false)", "Error"),
                        "502": _reply("Telegram could not be reached", "Error")}),
    },
    "/api/send/": {
        "post": _op("legacy_send", "Queue a notification (the replaced Django service's endpoint)",
                    {"201": _reply("Queued", "LegacyNotification")}, body="LegacySendRequest",
                    refusals={"400": _reply("Refused, as Django REST framework answered", "LegacyErrors")}),
    },
    "/api/v1/openapi.json": {
        "get": _op("openapi", "This document", {"200": {
            "description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}}),
    },
}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document served at ``/api/v1/openapi.json``."""
    return copy.deepcopy({
        "openapi": "3.1.0",
        "info": {"title": "failover-notify HTTP API", "version": __version__,
                 "description": "Send notifications over Telegram -> email -> SMS with failover. "
                                "Every request needs `Authorization: Bearer <token>`."},
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": PATHS,
    })


# -- holding requests to the document ------------------------------------------------------------

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "integer": (int,), "number": (int, float),
    "boolean": (bool,), "null": (type(None),),
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One refused field: ``wrong_type`` problems are answered 400, the others 422."""

    field: str | None
    message: str
    wrong_type: bool = False


def _is(value: Any, type_name: str) -> bool:
    if isinstance(value, bool) and type_name in ("integer", "number"):
        return False
    return isinstance(value, _JSON_TYPES[type_name])


def _problems_of(value: Any, schema: dict[str, Any], field: str) -> list[Problem]:
    """What is wrong with one field's value (type first; the constraints only for the right type)."""
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    if not any(_is(value, t) for t in types):
        return [Problem(field, f"must be {' or '.join(types)}", wrong_type=True)]
    if value is None:
        return []
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            return [Problem(field, "must not be empty")]
        if schema.get("uniqueItems") and len({repr(v) for v in value}) != len(value):
            return [Problem(field, "must not repeat an item")]
        return [p for item in value for p in _problems_of(item, schema["items"], field)][:1]
    return _scalar_problems(value, schema, field)


def _scalar_problems(value: Any, schema: dict[str, Any], field: str) -> list[Problem]:
    if "enum" in schema and value not in schema["enum"]:
        return [Problem(field, f"{value!r} is not one of {', '.join(str(e) for e in schema['enum'] if e)}")]
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            return [Problem(field, "required")]
        if len(value) > schema.get("maxLength", len(value)):
            return [Problem(field, f"too long ({len(value)} characters, at most {schema['maxLength']})")]
        if "pattern" in schema and not re.search(schema["pattern"], value):
            return [Problem(field, _PATTERN_MESSAGES.get(schema["pattern"], "has the wrong form"))]
    elif isinstance(value, int) and not schema.get("minimum", value) <= value <= schema.get("maximum", value):
        return [Problem(field, f"must be between {schema['minimum']} and {schema['maximum']}")]
    return []


_PATTERN_MESSAGES = {
    NOT_BLANK: "must not be empty",
    r"^[^\r\n]*$": "must be one line (no CR or LF)",
    DEADLINE_PATTERN: "must be an RFC 3339 time between 1970 and 9998, e.g. 2026-01-31T12:00:00Z",
}


def problems(value: Any, schema: dict[str, Any]) -> list[Problem]:
    """Every way ``value`` (a parsed JSON body or parameter mapping) breaks an object ``schema``."""
    if "$ref" in schema:
        schema = SCHEMAS[schema["$ref"].rsplit("/", 1)[1]]
    if not isinstance(value, dict):
        return [Problem(None, "the body must be a JSON object", wrong_type=True)]
    found = [Problem(name, "required") for name in schema.get("required", []) if name not in value]
    properties: dict[str, Any] = schema.get("properties", {})
    for name, item in value.items():
        if name in properties:
            found += _problems_of(item, properties[name], name)
        elif schema.get("additionalProperties") is False:
            found.append(Problem(name, f"unknown field (allowed: {', '.join(properties)})"))
    return found
