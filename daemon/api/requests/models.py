"""One request model per operation: what each socket op and HTTP route takes, defined once.

``REQUESTS`` maps every socket op that takes parameters to its model; the HTTP API validates its
bodies and queries with the same models (plus the two shapes only HTTP has: a page query, and the
replaced Django service's body), and its OpenAPI document shows their ``model_json_schema()``.
The docstrings and field descriptions below are that document's text: they are written for clients.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import pydantic
from pydantic import ConfigDict, Field, ModelWrapValidatorHandler, ValidationInfo, field_validator, model_validator

from daemon.api.requests.base import Request, field_error, with_error
from daemon.api.requests.groups import (
    ByBatch,
    ByName,
    GroupCreate,
    GroupName,
    GroupUpdate,
)
from daemon.api.requests.rules import (
    LIST_LIMIT_MAX,
    MAX_KEY,
    MAX_NAME,
    MAX_PATH,
    MAX_SEARCH,
    MAX_SUBJECT,
    MAX_TEXT,
    Chain,
    ChatId,
    Cursor,
    Deadline,
    Email,
    Integer,
    Names,
    OptOut,
    Phone,
    Seconds,
    StatusName,
    Text,
    invalid,
)
from daemon.api.requests.schedule import PriorityName, QuietWindow, TimeZone
from daemon.core.errors import ValidationError
from daemon.core.groups import NewBatch
from daemon.core.models import MAX_WAIT, Channel, NewNotification, Priority, Status

Id = Annotated[int, Integer()]
OptionalId = Annotated[int | None, Integer(optional=True)]
Message = Annotated[str, Text(MAX_TEXT)]
Channels = Annotated[tuple[Channel, ...] | None, Chain()]


class SendRequest(Request):
    """Queue a notification: for one recipient (``recipient_id``), or one for each member of a group
    (``group``: a batch, linked by its ``batch_id``). Exactly one of the two."""

    recipient_id: OptionalId = Field(None, description="The recipient's id; not with group.")
    group: Annotated[str | None, GroupName(optional=True)] = Field(
        None, description="A group's name: one notification for each member, linked by a batch_id (the reply is "
                          "the batch); not with recipient_id.")
    message: Message = Field(description="The text to deliver; not blank.")
    subject: Annotated[str | None, Text(MAX_SUBJECT, optional=True, one_line=True)] = Field(
        None, description="Email subject; one line. Default: the first line of the message.")
    idempotency_key: Annotated[str | None, Text(MAX_KEY, optional=True)] = Field(
        None, description="A repeat with the same key and the same fields returns the first notification and "
                          "sends nothing; the same key with other fields is a conflict.")
    ack_timeout: Annotated[float | None, Seconds()] = Field(
        None, description="Seconds to wait for the Telegram \"Got it\" press before the next channel.")
    expires_in: Annotated[float | None, Seconds()] = Field(
        None, description="Abandon delivery (status expired) this many seconds from now; not with deadline.")
    deadline: Annotated[datetime | None, Deadline()] = Field(
        None, description="Abandon delivery (status expired) after this time, within ten years of now; "
                          "not with expires_in.")
    chain: Channels = Field(None, description="Channels to try in order; default: the daemon's [chain] default.")
    priority: Annotated[Priority, PriorityName()] = Field(
        Priority.NORMAL, description="low, normal, high or critical: high and critical are not held by quiet "
                                     "hours, and a backlog is claimed higher priority first.")

    @model_validator(mode="wrap")
    @classmethod
    def _recipient_or_group(cls, data: Any, handler: ModelWrapValidatorHandler[SendRequest]) -> SendRequest:
        """Exactly one of ``recipient_id`` and ``group``, refused together with every other bad field (a
        model validator of mode "after" would run only once all the fields were good)."""
        given = [name for name in ("recipient_id", "group") if isinstance(data, dict) and data.get(name) is not None]
        if len(given) == 1 or not isinstance(data, dict):
            return handler(data)
        field, message, kind = (("recipient_id", "required", "missing") if not given else
                                ("group", "give either recipient_id or group, not both", "invalid"))
        try:
            handler(data)
        except pydantic.ValidationError as exc:
            raise with_error(cls, exc, field, message, kind) from None
        raise field_error(cls, field, message, kind)

    @field_validator("deadline")
    @classmethod
    def _deadline_or_expires_in(cls, deadline: datetime | None, info: ValidationInfo) -> datetime | None:
        if deadline is not None and info.data.get("expires_in") is not None:
            raise invalid("give either deadline or expires_in, not both")
        return deadline

    def to_notification(self, default_chain: tuple[Channel, ...], now: datetime) -> NewNotification:
        """What to store, as of ``now``: ``expires_in`` becomes the deadline, and a deadline given as a
        time must be within ten years of now (further out is a mistake, and overflows on read)."""
        deadline = self._deadline(now)
        assert self.recipient_id is not None  # else to_batch (the model validator saw one of the two)
        return NewNotification(
            recipient_id=self.recipient_id, text=self.message, chain=self.chain or default_chain,
            subject=self.subject, idempotency_key=self.idempotency_key or None, deadline=deadline,
            ack_timeout=self.ack_timeout, expires_in=self.expires_in, priority=self.priority or Priority.NORMAL,
        )

    def _deadline(self, now: datetime) -> datetime | None:
        if self.expires_in is not None:
            return now + timedelta(seconds=self.expires_in)
        if self.deadline is not None and not _within(self.deadline, now, MAX_WAIT):
            raise ValidationError("deadline", "must be within ten years of now")
        return self.deadline

    def to_batch(self, default_chain: tuple[Channel, ...], now: datetime) -> NewBatch:
        """What to store for a send to ``group``, as of ``now`` (as ``to_notification``)."""
        assert self.group is not None
        return NewBatch(
            group=self.group, text=self.message, chain=self.chain or default_chain, subject=self.subject,
            idempotency_key=self.idempotency_key or None, deadline=self._deadline(now),
            ack_timeout=self.ack_timeout, expires_in=self.expires_in, priority=self.priority or Priority.NORMAL,
        )


def _within(when: datetime, now: datetime, span: timedelta) -> bool:
    try:
        return abs(when - now) <= span
    except OverflowError:  # year 1 or 9999 with an offset
        return False


class ById(Request):
    """One notification or recipient, by id (show, cancel, retry; recipient show, remove, link)."""

    id: Id = Field(description="The notification's or recipient's id.")


class ListRequest(Request):
    """Notifications, newest first."""

    status: Annotated[Status | None, StatusName()] = Field(None, description="Only notifications in this status.")
    recipient_id: OptionalId = Field(None, description="Only notifications to this recipient.")
    limit: OptionalId = Field(None, description=f"At most this many (default 50; more than {LIST_LIMIT_MAX} "
                                                f"is read as {LIST_LIMIT_MAX}).")
    before_id: OptionalId = Field(None, description="Only notifications older than this id (the next page).")
    search: Annotated[str | None, Text(MAX_SEARCH, optional=True)] = Field(
        None, description="Only notifications whose text contains this.")


def _no_default(schema: dict[str, Any]) -> None:
    """Not given is "keep it"; null is refused: a default of null in the schema would say otherwise."""
    schema.pop("default", None)


class RecipientChanges(Request):
    """Change some of a recipient's fields; a field not given is kept."""

    name: Annotated[str | None, Text(MAX_NAME)] = Field(
        None, description="What to call the recipient; not blank.", json_schema_extra=_no_default)
    email: Annotated[str | None, Email()] = Field(None, description="An address; empty or null: none.")
    phone: Annotated[str | None, Phone()] = Field(None, description="E.164, e.g. +14155550100; empty or null: none.")
    telegram_chat_id: Annotated[int | None, ChatId()] = Field(
        None, description="Non-zero Telegram chat id; null: not linked.")
    opt_out: Annotated[frozenset[Channel], OptOut()] = Field(
        frozenset(), description="Channels this recipient refuses; null or empty: none.")
    timezone: Annotated[str | None, TimeZone()] = Field(
        None, description="An IANA time zone name for quiet hours, e.g. Europe/Moscow; empty: UTC.")
    quiet_hours: Annotated[str | None, QuietWindow()] = Field(
        None, description="A daily window HH:MM-HH:MM in that zone (may cross midnight); empty or off: none.")

    def changes(self) -> dict[str, Any]:
        """The recipient fields given, by name (an absent one is not changed)."""
        return {name: getattr(self, name) for name in RecipientChanges.model_fields if name in self.model_fields_set}


class RecipientCreate(RecipientChanges):
    """Add a recipient."""

    name: Annotated[str, Text(MAX_NAME)] = Field(description="What to call the recipient; not blank.")


class RecipientUpdate(RecipientChanges):
    """Change some of a recipient's fields (socket ``recipient.update``: the id with the changes)."""

    id: Id = Field(description="The recipient's id.")

    @classmethod
    def of(cls, recipient_id: int, changes: RecipientChanges) -> RecipientUpdate:
        """From an id and changes already validated apart (the HTTP API's path and body)."""
        return cls.model_construct(_fields_set={"id", *changes.model_fields_set}, id=recipient_id,
                                   **{name: getattr(changes, name) for name in RecipientChanges.model_fields})


class BackupRequest(Request):
    """Write a consistent copy of the database."""

    path: Annotated[str | None, Text(MAX_PATH, optional=True)] = Field(
        None, description="Absolute path of a new file; default: a new file in <state_dir>/backups.")


class SubscribeRequest(Request):
    """Stream events until the client disconnects."""

    events: Annotated[tuple[str, ...] | None, Names()] = Field(None, description="Only these kinds; default: all.")


REQUESTS: dict[str, type[Request]] = {
    "send": SendRequest,
    "show": ById,
    "list": ListRequest,
    "cancel": ById,
    "retry": ById,
    "recipient.add": RecipientCreate,
    "recipient.show": ById,
    "recipient.update": RecipientUpdate,
    "recipient.remove": ById,
    "recipient.link": ById,
    "group.add": GroupCreate,
    "group.show": ByName,
    "group.update": GroupUpdate,
    "group.remove": ByName,
    "batch.show": ByBatch,
    "backup": BackupRequest,
    "subscribe": SubscribeRequest,
}
"""The model of each socket op that takes parameters (the others, ``ping``, ``status``, ``health``,
``pause``, ``resume``, ``recipient.list`` and ``group.list``, take none)."""


# -- the shapes only the HTTP API has ----------------------------------------------------------------

class NotificationsQuery(Request):
    """A page of notifications, newest first."""

    status: Annotated[Status | None, StatusName()] = Field(None, description="Only notifications in this status.")
    limit: Annotated[int, Integer(1, LIST_LIMIT_MAX)] = Field(50, description="At most this many.")
    cursor: Annotated[int | None, Cursor()] = Field(
        None, description="next_cursor of the previous page (opaque).")

    def to_list(self) -> ListRequest:
        return ListRequest(status=self.status, limit=self.limit, before_id=self.cursor)


class LegacySendRequest(Request):
    """The body the replaced Django service took; other fields are ignored, as it did."""

    model_config = ConfigDict(extra="ignore")

    recipient: Id = Field(description="The recipient's id.")
    message: Message = Field(description="The text to deliver; not blank.")
    channels_chain: Channels = Field(None, description="Channels to try in order; default: the daemon's.")

    def to_send(self) -> SendRequest:
        """The same request in the send model's terms."""
        return SendRequest(recipient_id=self.recipient, message=self.message, chain=self.channels_chain)
