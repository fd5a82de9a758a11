"""The narrow async interface the daemon needs from a store.

The core defines it (a port); ``daemon.storage`` implements it: SQLite (one daemon, embedded) and
PostgreSQL (any number of daemons sharing one database); ``tests/test_store_contract.py`` runs the same
tests against both. PostgreSQL claims with ``FOR UPDATE SKIP LOCKED`` where SQLite serialises writers
with ``BEGIN IMMEDIATE``.

Claims have an owner and a lease: ``claim_due`` records which daemon (``owner``, a daemon id) holds a
notification and until when (``lease_until``); the engine renews the leases of its rows in flight
(``renew_leases``). A lease that runs out belongs to a daemon that died or hung: the next claim by any
other daemon records its open attempts ``interrupted`` and retries the row (at-least-once). A live
lease is never taken, and ``recover_interrupted`` touches only the caller's own rows and expired
leases. Given an ``owner``, ``start_attempt``, ``finish_attempt`` and ``release_claim`` write only while
that owner still holds the claim, and raise ``LeaseLost`` otherwise.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from daemon.core.groups import Batch, Group, NewBatch
from daemon.core.models import (
    Attempt,
    AttemptRecord,
    Channel,
    NewNotification,
    Notification,
    NotificationUpdate,
    Recipient,
    Skip,
    Status,
)
from daemon.core.sms_caps import SmsUsage
from daemon.core.sms_receipt import Receipt


@dataclass(frozen=True, slots=True)
class ChannelActivity:
    """One channel's attempts over a window, for the ``health`` reply."""

    per_bucket: dict[str, list[int]]  # outcome -> attempts finished in each bucket, oldest first
    durations: tuple[float, ...]  # seconds, of its newest provider calls (models.TIMED_OUTCOMES)


@dataclass(frozen=True, slots=True)
class Member:
    """A daemon sharing the database, as its heartbeat row says; ``leads``: the roles it holds."""

    id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    leads: tuple[str, ...] = ()


BOT_ROLE = "telegram-bot"
"""The leadership role of the daemon that runs getUpdates (one at a time, or Telegram answers 409)."""
UPDATE_RETENTION = 86_400.0
"""Seconds a handled update_id is remembered: Telegram keeps an unconfirmed update for 24 hours."""


def new_owner_id() -> str:
    """A daemon id for claims, new at every start: ``<hostname>:<pid>:<random>``. The random part keeps a
    restarted daemon (same host, perhaps the same pid in a container) from passing for the one that died."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class LinkOutcome(StrEnum):
    """What redeeming an opt-in token came to."""

    LINKED = "linked"
    ALREADY_LINKED = "already_linked"  # this very chat redeemed it before (a re-delivered /start)
    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"
    CHAT_TAKEN = "chat_taken"  # the chat is linked to another recipient: never moved silently


@dataclass(frozen=True, slots=True)
class LinkRedemption:
    outcome: LinkOutcome
    recipient: Recipient | None = None  # the recipient the token was made for
    holder: Recipient | None = None  # CHAT_TAKEN: the recipient the chat is linked to


class AckOutcome(StrEnum):
    """What pressing a notification's "Got it" button came to."""

    ACKNOWLEDGED = "acknowledged"
    ALREADY = "already"
    CLOSED = "closed"  # cancelled, expired or failed: nothing left to acknowledge
    NOT_FOUND = "not_found"  # no such notification asking for an ack, or not this chat's


@dataclass(frozen=True, slots=True)
class AckResult:
    outcome: AckOutcome
    notification: Notification | None = None


class Store(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...

    # recipients
    async def add_recipient(
        self, name: str, email: str | None, phone: str | None, telegram_chat_id: int | None
    ) -> Recipient: ...
    async def get_recipient(self, recipient_id: int) -> Recipient | None: ...
    async def get_recipient_by_chat(self, chat_id: int) -> Recipient | None: ...
    async def get_recipients(self, recipient_ids: Collection[int]) -> dict[int, Recipient]:
        """The recipients among ``recipient_ids`` that exist, by id: one read for a claimed batch."""
        ...
    async def list_recipients(self) -> list[Recipient]: ...
    async def update_recipient(self, recipient_id: int, fields: dict[str, Any]) -> Recipient: ...
    async def remove_recipient(self, recipient_id: int) -> None: ...

    # notifications
    async def create_notification(self, new: NewNotification, now: datetime) -> tuple[Notification, bool]: ...
    async def get_notification(self, notification_id: int) -> Notification | None: ...
    async def list_notifications(
        self,
        status: Status | None = None,
        recipient_id: int | None = None,
        limit: int = 50,
        before_id: int | None = None,
        search: str | None = None,
    ) -> list[Notification]: ...
    async def cancel(self, notification_id: int, now: datetime) -> Notification: ...
    async def redrive(self, notification_id: int, now: datetime) -> Notification: ...

    # recipient groups and batch sends (daemon/core/groups.py states the rules)
    async def add_group(self, name: str, members: Collection[int], now: datetime) -> Group:
        """A new group: Conflict when the name is taken, ValidationError ``members`` naming an unknown id."""
        ...
    async def get_group(self, name: str) -> Group | None: ...
    async def list_groups(self) -> list[Group]: ...
    async def update_group(self, name: str, *, rename: str | None = None, members: Collection[int] | None = None,
                           add: Collection[int] = (), remove: Collection[int] = ()) -> Group:
        """Rename, replace the members, or add and remove some; NotFound, Conflict (name taken) or
        ValidationError (``members``/``add``: an unknown recipient id) otherwise."""
        ...
    async def remove_group(self, name: str) -> None: ...
    async def create_batch(self, new: NewBatch, now: datetime) -> tuple[Batch, bool]:
        """One notification per member of ``new.group``, all or none, linked by a new batch id; with an
        idempotency key the batch that key made before (False) unless that was another request (Conflict).
        NotFound: no such group; ValidationError ``group``: it has no members."""
        ...
    async def get_batch(self, batch_id: int) -> Batch | None: ...

    # the engine's side
    async def recover_interrupted(self, now: datetime, owner: str) -> int:
        """Release ``owner``'s claims and expired leases (attempts open on them: ``interrupted``); how many
        attempts were closed."""
        ...
    async def claim_due(self, now: datetime, limit: int, owner: str, lease_until: datetime) -> list[Notification]:
        """Take expired leases of other owners back (as ``recover_interrupted`` does), then claim up to
        ``limit`` due notifications for ``owner`` until ``lease_until``."""
        ...
    async def renew_leases(self, owner: str, ids: Collection[int], until: datetime) -> set[int]:
        """Extend ``owner``'s leases on ``ids``; returns the ids it still holds."""
        ...
    async def next_due_time(self) -> datetime | None: ...
    async def start_attempt(
        self, notification_id: int, channel: Channel, now: datetime, tries: int, owner: str | None = None
    ) -> int: ...
    async def finish_attempt(
        self,
        attempt_id: int | None,
        notification_id: int,
        channel: Channel,
        record: AttemptRecord,
        update: NotificationUpdate,
        now: datetime,
        owner: str | None = None,
    ) -> tuple[Attempt, Status]: ...
    async def skip_then_start(
        self, skip: Skip, notification_id: int, channel: Channel, now: datetime, tries: int, owner: str | None = None
    ) -> tuple[Attempt, Status, int | None]:
        """``finish_attempt(None, ..., skip...)`` then ``start_attempt(...)`` in one transaction: the skipped
        step's attempt, the status it left, and the new attempt's id; None (nothing started) when the
        notification was already final (cancelled while walked)."""
        ...
    async def set_telegram_blocked(self, recipient_id: int, blocked: bool) -> Recipient: ...
    async def release_claim(
        self, notification_id: int, now: datetime, due: datetime, error: str, owner: str | None = None
    ) -> None:
        """Drop the engine's claim after a failed walk: open attempts ``interrupted`` with ``error``, the row
        due again at ``due`` unless final."""
        ...
    async def awaiting_ack(self, notification_id: int) -> bool: ...

    # SMS delivery receipts and caps (daemon/storage/sqlite_sms.py states the rules)
    async def await_receipt(self, attempt_id: int, notification_id: int, message_sid: str, sent_at: datetime,
                            timeout: float, update: NotificationUpdate, now: datetime,
                            owner: str | None = None) -> None:
        """Leave the attempt open with ``message_sid``; the notification released, due at the timeout."""
        ...
    async def record_receipt(self, message_sid: str, status: str, error_code: int | None,
                             now: datetime) -> int | None:
        """Keep a reported status (a final one makes the notification due now); its id, None if unknown."""
        ...
    async def pending_receipt(self, notification_id: int) -> Receipt | None: ...
    async def pending_receipts(self, limit: int = 500) -> list[Receipt]: ...
    async def record_sms_sent(self, recipient_id: int, now: datetime, segments: int) -> tuple[int, int]:
        """Count an accepted SMS; the segments sent today (UTC, every daemon) before and after it."""
        ...
    async def sms_usage(self, recipient_id: int, since: datetime, day_start: datetime) -> SmsUsage: ...

    # the Telegram bot's side
    async def create_link_token(self, recipient_id: int, token: str, now: datetime, expires_at: datetime) -> None: ...
    async def redeem_link_token(self, token: str, chat_id: int, now: datetime) -> LinkRedemption: ...
    async def acknowledge(self, notification_id: int, chat_id: int, now: datetime) -> AckResult: ...

    # state every daemon sharing the database obeys
    async def get_paused(self) -> bool:
        """Whether delivery is held (``fnotify pause`` on any daemon of the cluster)."""
        ...
    async def set_paused(self, paused: bool, now: datetime, by: str) -> None:
        """Hold or resume delivery for every daemon on this database; ``by`` is the daemon id asking."""
        ...

    async def heartbeat(self, owner: str, started_at: datetime, now: datetime, stale_before: datetime) -> None:
        """Upsert ``owner``'s member row; remove the rows of daemons silent since ``stale_before``."""
        ...
    async def leave(self, owner: str) -> None:
        """A clean stop: ``owner``'s member row and every leadership it holds go."""
        ...
    async def members(self) -> list[Member]: ...
    async def lead(self, role: str, owner: str, now: datetime, until: datetime) -> bool:
        """Take ``role`` (free, or its lease ran out by ``now``) or renew it (``owner``'s own row only) until
        ``until``; False when another daemon holds it."""
        ...
    async def first_time_update(self, update_id: int, now: datetime) -> bool:
        """Record a Telegram update as handled; False if some daemon handled it already."""
        ...

    # operators
    @property
    def location(self) -> str:
        """Where the data lives, for logs and ``status``: a path, or a URL without its password."""
        ...
    async def backup(self, path: Path) -> int: ...
    async def prune(self, before: datetime) -> int: ...
    async def ping(self) -> None: ...
    async def counts_by_status(self) -> dict[str, int]: ...
    async def channel_health(self, since: datetime) -> dict[str, dict[str, int]]: ...
    async def channel_activity(self, since: datetime, buckets: int, step: float) -> dict[str, ChannelActivity]: ...
