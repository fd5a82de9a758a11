"""Domain values: states are enums, records are frozen dataclasses.

Nothing here does I/O; the storage module builds these from rows and the
service layer turns them into JSON for the socket API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

# the vocabulary is part of the wire contract, so it lives in the protocol module; it is imported
# here too because the domain speaks it, and the rest of the daemon imports it from here
from daemon.protocol import FINAL_STATUSES as FINAL_STATUSES
from daemon.protocol import AttemptJSON, NotificationJSON, NotificationSummaryJSON, RecipientJSON, RecipientTelegramData
from daemon.protocol import Channel as Channel
from daemon.protocol import Outcome as Outcome
from daemon.protocol import Priority as Priority
from daemon.protocol import Status as Status

MAX_WAIT = timedelta(days=3653)
"""Ten years: the furthest a deadline, an ``expires_in`` or an ``ack_timeout`` may reach. Further out is
a mistake, and without a bound ``now + timedelta(...)`` overflows (after the provider has delivered)."""


TIMED_OUTCOMES = frozenset({Outcome.DELIVERED, Outcome.RETRY, Outcome.FAILED})
"""Outcomes of attempts that called the provider: their duration is the call's (the others were
never started, or were cut off by a restart), so only these count towards attempt latency."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime | None) -> str | None:
    return ts.isoformat(timespec="milliseconds") if ts is not None else None


def iso_at(ts: datetime) -> str:
    """``iso`` for a time that is always set."""
    return ts.isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class Recipient:
    id: int
    name: str
    email: str | None = None
    phone: str | None = None
    telegram_chat_id: int | None = None
    opt_out: frozenset[Channel] = frozenset()
    telegram_blocked: bool = False
    created_at: datetime = field(default_factory=utcnow)
    timezone: str = "UTC"  # IANA name: the wall clock quiet hours are read on
    quiet_hours: str | None = None  # "22:00-07:00", normalised; None: never quiet

    @property
    def telegram_state(self) -> str:
        """linked / not linked / opted out / blocked, as operators read it."""
        if self.telegram_chat_id is None:
            return "not linked"
        if self.telegram_blocked:
            return "blocked"
        if Channel.TELEGRAM in self.opt_out:
            return "opted out"
        return "linked"

    def address(self, channel: Channel) -> str | int | None:
        """Where ``channel`` reaches this person (the Telegram chat, the email address, the phone
        number), or None when it is not known."""
        value = {Channel.TELEGRAM: self.telegram_chat_id, Channel.EMAIL: self.email, Channel.SMS: self.phone}[channel]
        return None if value == "" else value

    def telegram_event(self) -> RecipientTelegramData:
        """The payload of the recipient.* Telegram-state events (linked, opted out, blocked...)."""
        return {"recipient_id": self.id, "name": self.name, "telegram_chat_id": self.telegram_chat_id,
                "telegram_state": self.telegram_state}

    def to_json(self) -> RecipientJSON:
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "phone": self.phone,
            "telegram_chat_id": self.telegram_chat_id,
            "opt_out": sorted(self.opt_out),
            "telegram_blocked": self.telegram_blocked,
            "telegram_state": self.telegram_state,
            "timezone": self.timezone,
            "quiet_hours": self.quiet_hours,
            "created_at": iso_at(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class Attempt:
    id: int
    notification_id: int
    channel: Channel
    outcome: Outcome | None  # None while in flight
    error: str | None
    provider_message_id: str | None
    started_at: datetime
    finished_at: datetime | None
    retry_at: datetime | None = None  # when the same channel is tried again (outcome retry)

    def to_json(self) -> AttemptJSON:
        duration_ms = None
        if self.finished_at is not None:
            duration_ms = round((self.finished_at - self.started_at).total_seconds() * 1000, 1)
        return {
            "id": self.id,
            "notification_id": self.notification_id,
            "channel": str(self.channel),
            "outcome": str(self.outcome) if self.outcome else None,
            "error": self.error,
            "provider_message_id": self.provider_message_id,
            "started_at": iso_at(self.started_at),
            "finished_at": iso(self.finished_at),
            "retry_at": iso(self.retry_at),
            "duration_ms": duration_ms,
        }


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    recipient_id: int
    text: str
    subject: str | None
    chain: tuple[Channel, ...]
    status: Status
    idempotency_key: str | None
    position: int  # index in chain of the channel being tried
    tries_on_channel: int  # attempts made on chain[position] so far
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime
    deadline: datetime | None = None
    ack_timeout: float | None = None
    attempts: tuple[Attempt, ...] = ()
    priority: Priority = Priority.NORMAL
    batch_id: int | None = None  # set when it is one member's notification of a send to a group

    @property
    def current_channel(self) -> Channel | None:
        return self.chain[self.position] if self.position < len(self.chain) else None

    def summary_json(self) -> NotificationSummaryJSON:
        """Everything but the attempt log (``notification.created``, API-made status changes)."""
        delivered_by = next(
            (a.channel for a in reversed(self.attempts) if a.outcome is Outcome.DELIVERED), None
        ) if self.attempts else None
        # a new notification's three times are one object (sqlite_rows.inserted_notification): formatted once
        created_at = iso_at(self.created_at)
        updated_at = created_at if self.updated_at is self.created_at else iso_at(self.updated_at)
        next_attempt_at = created_at if self.next_attempt_at is self.created_at else iso(self.next_attempt_at)
        return {
            "id": self.id,
            "recipient_id": self.recipient_id,
            "text": self.text,
            "subject": self.subject,
            "chain": [str(c) for c in self.chain],
            "status": str(self.status),
            "priority": str(self.priority),
            "idempotency_key": self.idempotency_key,
            "channel": str(delivered_by or self.current_channel or "") or None,
            "next_attempt_at": next_attempt_at,
            "deadline": iso(self.deadline),
            "ack_timeout": self.ack_timeout,
            "created_at": created_at,
            "updated_at": updated_at,
            "attempt_count": len(self.attempts),
            "batch_id": self.batch_id,
        }

    def to_json(self) -> NotificationJSON:
        return {**self.summary_json(), "attempts": [a.to_json() for a in self.attempts]}


@dataclass(frozen=True, slots=True)
class NewNotification:
    """What a sender asks for; validated by the service layer before storage sees it."""

    recipient_id: int
    text: str
    chain: tuple[Channel, ...]
    subject: str | None = None
    idempotency_key: str | None = None
    deadline: datetime | None = None
    ack_timeout: float | None = None
    expires_in: float | None = None  # as sent (it set ``deadline``): what a retry with the same key repeats
    priority: Priority = Priority.NORMAL


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """How one attempt ended, written together with the notification's next state."""

    outcome: Outcome
    error: str | None = None
    provider_message_id: str | None = None
    retry_at: datetime | None = None
    sent_at: datetime | None = None  # when the provider call began, after any pacing: the attempt's start


@dataclass(frozen=True, slots=True)
class NotificationUpdate:
    """The notification's state after an attempt: where in the chain, and when to try next."""

    status: Status
    position: int
    tries: int
    next_attempt_at: datetime | None  # None: final or waiting on nothing
    release: bool = True  # clear the in-flight claim
    awaiting_ack: bool = False  # delivered on Telegram; at next_attempt_at it counts as unacknowledged


@dataclass(frozen=True, slots=True)
class Skip:
    """A step decided without a provider call (a channel skipped), held back by the engine so it is written
    in one transaction with the start of the attempt that follows it (``Store.skip_then_start``)."""

    channel: Channel
    record: AttemptRecord
    update: NotificationUpdate
    at: datetime
