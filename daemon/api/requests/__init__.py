"""Requests: one pydantic model per operation, used by the socket API, the HTTP API and the OpenAPI
document, so each rule (a range, a length, a format) is written once.

    rules.py     the rule each kind of field obeys, with its JSON schema (ids, text, chains, contacts...)
    base.py      ``Request``, the base of every model, and ``field_error`` (a refusal from a cross-field check)
    groups.py    the models of recipient groups and batches (``group.*``, ``batch.show``)
    models.py    the models: ``REQUESTS`` (socket op -> model) and the HTTP API's own two shapes
    parsing.py   ``parse``: parameters -> model, or ``InvalidRequest`` naming every bad field
"""

from daemon.api.requests.base import Request
from daemon.api.requests.groups import ByBatch, ByName, GroupChanges, GroupCreate, GroupUpdate
from daemon.api.requests.models import (
    REQUESTS,
    BackupRequest,
    ById,
    LegacySendRequest,
    ListRequest,
    NotificationsQuery,
    RecipientChanges,
    RecipientCreate,
    RecipientUpdate,
    SendRequest,
    SubscribeRequest,
)
from daemon.api.requests.parsing import InvalidRequest, Problem, parse, parse_query
from daemon.api.requests.rules import INT64_MAX, LIST_LIMIT_MAX

__all__ = [
    "INT64_MAX", "LIST_LIMIT_MAX", "REQUESTS", "BackupRequest", "ByBatch", "ById", "ByName", "GroupChanges",
    "GroupCreate", "GroupUpdate", "InvalidRequest", "LegacySendRequest",
    "ListRequest", "NotificationsQuery", "Problem", "RecipientChanges", "RecipientCreate", "RecipientUpdate",
    "Request", "SendRequest", "SubscribeRequest", "parse", "parse_query",
]
