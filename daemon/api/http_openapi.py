"""The HTTP API's OpenAPI 3.1 document.

The request bodies and parameters are the request models' own schemas (``daemon.api.requests``:
``model_json_schema()``), the models ``daemon.api.http_api`` validates with, so what the document
says is refused is refused: 400 for a wrong JSON type, 422 for any other refused value. Meaning a
schema cannot express (a phone number's numbering plan, a calendar date) is in the models too and is
also answered 422. The replies' schemas are written out below.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import Field

from daemon import __version__
from daemon.api.requests import (
    GroupChanges,
    GroupCreate,
    LegacySendRequest,
    NotificationsQuery,
    RecipientChanges,
    RecipientCreate,
    Request,
    SendRequest,
)
from daemon.api.requests.groups import Name
from daemon.api.requests.models import Id
from daemon.core.models import Channel, Outcome, Priority, Status

CHANNELS = [str(c) for c in Channel]
REQUEST_BODIES: dict[str, type[Request]] = {
    model.__name__: model for model in (SendRequest, LegacySendRequest, RecipientCreate, RecipientChanges,
                                        GroupCreate, GroupChanges)
}
"""Each request body's model, by the name of its schema in the document."""


class PathParameters(Request):
    """The path parameters of every route, as the API validates them (``ById``, ``ByName``, ``ByBatch``)."""

    id: Id = Field(description="The notification's, recipient's or batch's id.")
    name: Name = Field(description="The group's name.")


PARAMETERS: dict[str, type[Request]] = {"path": PathParameters, "query": NotificationsQuery}
"""The model of the path parameters (``{id}``, ``{name}``) and of the query parameters (listing notifications)."""


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "type": [schema["type"], "null"]}


_TIME = {"type": "string", "format": "date-time"}
_CHANNEL = {"type": "string", "enum": CHANNELS}
_PRIORITY = {"type": "string", "enum": [str(p) for p in Priority]}

SCHEMAS: dict[str, dict[str, Any]] = {
    **{name: model.model_json_schema() for name, model in REQUEST_BODIES.items()},
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
                     "attempt_count", "batch_id", "attempts"],
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
            "batch_id": {"type": ["integer", "null"],
                         "description": "The batch of a send to a group; null: sent to one recipient."},
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
    "Group": {
        "type": "object", "required": ["name", "members", "created_at"],
        "properties": {"name": {"type": "string"}, "members": {"type": "array", "items": {"type": "integer"},
                                                               "description": "Recipient ids, ascending."},
                       "created_at": _TIME},
    },
    "GroupRemoved": {"type": "object", "required": ["name", "removed"],
                     "properties": {"name": {"type": "string"}, "removed": {"type": "boolean", "const": True}}},
    "Batch": {
        "type": "object", "description": "A send to a group: one notification per member.",
        "required": ["batch_id", "group", "idempotency_key", "created_at", "counts", "notifications"],
        "properties": {
            "batch_id": {"type": "integer"}, "group": {"type": "string"},
            "idempotency_key": {"type": ["string", "null"]}, "created_at": _TIME,
            "counts": {"type": "object", "additionalProperties": {"type": "integer"},
                       "description": "status -> how many of the batch's notifications are in it"},
            "notifications": {"type": "array", "items": {
                "type": "object", "required": ["id", "recipient_id", "recipient_name", "status", "channel",
                                               "attempt_count", "updated_at"],
                "properties": {"id": {"type": "integer"}, "recipient_id": {"type": "integer"},
                               "recipient_name": {"type": ["string", "null"]},
                               "status": {"type": "string", "enum": [str(s) for s in Status]},
                               "channel": {"type": ["string", "null"], "enum": [*CHANNELS, None]},
                               "attempt_count": {"type": "integer"}, "updated_at": _TIME}}},
        },
    },
    "BatchSent": {"allOf": [_ref("Batch"), {
        "type": "object", "required": ["created"],
        "properties": {"created": {"type": "boolean",
                                   "description": "false: a repeat of an idempotency_key, nothing new was sent"}},
    }]},
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

def _reply(description: str, schema: str | None = None, *alternatives: str) -> dict[str, Any]:
    if schema is None:
        return {"description": description}
    body = {"oneOf": [_ref(schema), *map(_ref, alternatives)]} if alternatives else _ref(schema)
    return {"description": description, "content": {"application/json": {"schema": body}}}


_COMMON = {
    "401": {**_reply("Missing or wrong bearer token (no detail is given)", "Error"),
            "headers": {"WWW-Authenticate": {"required": True, "schema": {"type": "string", "const": "Bearer"}}}},
    "503": _reply("The database refused the operation; try again", "Error"),
}
_BAD = {"400": _reply("Malformed JSON or a wrong JSON type; names each field", "Errors"),
        "422": _reply("A value was refused; names each field", "Errors")}
_BODY_TOO_LARGE = {"413": _reply("The body is larger than the limit", "Error")}
_MISSING = {"404": _reply("No such notification or recipient", "Error")}
_GROUP_MISSING = {"404": _reply("No such group", "Error")}
_CHAT_TAKEN = {"409": _reply("The Telegram chat belongs to another recipient", "Error")}


def _params(names: list[str], where: str) -> list[dict[str, Any]]:
    schema = PARAMETERS[where].model_json_schema()
    return [{"name": n, "in": where, "required": n in schema.get("required", []), "schema": schema["properties"][n]}
            for n in names]


def _op(operation_id: str, summary: str, ok: dict[str, dict[str, Any]], *, body: str | None = None,
        path_id: bool = False, path_name: bool = False, query: list[str] | None = None,
        extra: dict[str, dict[str, Any]] | None = None, refusals: dict[str, dict[str, Any]] = _BAD) -> dict[str, Any]:
    """One operation; ``operation_id`` is the name of its handler in ``daemon.api.http_api.HttpApi``."""
    responses = {**ok, **_COMMON, **(_MISSING if path_id else {}), **(_GROUP_MISSING if path_name else {}),
                 **(extra or {})}
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary, "responses": responses}
    params = _params(["id"], "path") if path_id else []
    params += _params(["name"], "path") if path_name else []
    params += _params(query or [], "query")
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
        "post": _op("send", "Queue a notification (recipient_id), or one per member of a group (group)", {
            "202": _reply("Queued: the notification, or the group's batch", "Notification", "BatchSent"),
            "200": _reply("A repeat of an idempotency_key: the first notification or batch", "Notification",
                          "BatchSent"),
        }, body="SendRequest", extra={"404": _reply("No such recipient or group", "Error"), "409": _reply(
            "The idempotency_key was used for a notification or batch with other fields", "Error")}),
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
                     {"200": _reply("Updated", "Recipient")}, path_id=True, body="RecipientChanges",
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
    "/api/v1/groups": {
        "get": _op("list_groups", "List groups", {"200": {"description": "All groups", "content": {
            "application/json": {"schema": {"type": "array", "items": _ref("Group")}}}}}),
        "post": _op("add_group", "Add a group of recipients", {"201": _reply("Added", "Group")},
                    body="GroupCreate", extra={"409": _reply("A group of that name exists", "Error")}),
    },
    "/api/v1/groups/{name}": {
        "get": _op("show_group", "A group", {"200": _reply("Found", "Group")}, path_name=True),
        "patch": _op("update_group", "Rename a group, replace its members, or add and remove some",
                     {"200": _reply("Updated", "Group")}, path_name=True, body="GroupChanges",
                     extra={"409": _reply("A group of the new name exists", "Error")}),
        "delete": _op("remove_group", "Remove a group (its batches and their notifications stay)",
                      {"200": _reply("Removed", "GroupRemoved")}, path_name=True),
    },
    "/api/v1/batches/{id}": {
        "get": _op("show_batch", "A send to a group, with each member's notification and status",
                   {"200": _reply("Found", "Batch")}, path_id=True, extra={"404": _reply("No such batch", "Error")}),
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
