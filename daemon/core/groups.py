"""Recipient groups and batch sends: the values, and the rule that tells a repeat of a batch send from
a different request under the same idempotency key. Nothing here does I/O.

A send to a group is a batch: one notification per member, created together (all or none), each
carrying the batch's id. An idempotency key belongs to the batch as a whole.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from daemon.core.models import Channel, NewNotification, Notification, Priority, iso_at
from daemon.protocol import BatchJSON, BatchMemberJSON, GroupJSON

GROUP_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
"""A group's name: lower-case letters, digits, ``_ . -``, starting with a letter or digit, at most 64."""
MAX_MEMBERS = 1000
"""The most recipients one group may hold: a send to it makes that many notifications in one transaction."""


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    members: tuple[int, ...]  # recipient ids, ascending
    created_at: datetime

    def to_json(self) -> GroupJSON:
        return {"name": self.name, "members": list(self.members), "created_at": iso_at(self.created_at)}


@dataclass(frozen=True, slots=True)
class NewBatch:
    """A send to a group, validated by the service layer before storage sees it."""

    group: str
    text: str
    chain: tuple[Channel, ...]
    subject: str | None = None
    idempotency_key: str | None = None
    deadline: datetime | None = None
    ack_timeout: float | None = None
    expires_in: float | None = None  # as sent: a repeat compares it, not the deadline it set
    priority: Priority = Priority.NORMAL

    def notification_for(self, recipient_id: int) -> NewNotification:
        """One member's notification (no key of its own: the key is the batch's)."""
        return NewNotification(recipient_id=recipient_id, text=self.text, chain=self.chain, subject=self.subject,
                               deadline=self.deadline, ack_timeout=self.ack_timeout, expires_in=self.expires_in,
                               priority=self.priority)

    def payload(self) -> dict[str, Any]:
        """The request as sent, by request field name: what a repeat with the same key must match. A
        relative ``expires_in`` is kept as given (a retry a second later sets a later deadline)."""
        return {"group": self.group, "message": self.text, "subject": self.subject,
                "chain": [str(c) for c in self.chain], "ack_timeout": self.ack_timeout,
                "priority": str(self.priority), "expires_in": self.expires_in,
                "deadline": None if self.expires_in is not None or self.deadline is None
                else self.deadline.timestamp()}

    def payload_text(self) -> str:
        return json.dumps(self.payload(), ensure_ascii=False, sort_keys=True)


def payload_differences(stored: str, new: NewBatch) -> list[str]:
    """The request fields in which ``new`` differs from the batch stored with the same key."""
    try:
        before = json.loads(stored)
    except ValueError:
        before = {}
    after = new.payload()
    return [name for name in after if before.get(name) != after[name]]


def key_conflict(key: str, what: str, differs: list[str] | None = None) -> str:
    """The message of a Conflict over an idempotency key used before for ``what``."""
    other = f"with another {', '.join(differs)}" if differs else "for another kind of send"
    return (f"idempotency_key {key!r} was used for {what} {other}: a repeat must send the same request; "
            "use a new key for a new notification")


@dataclass(frozen=True, slots=True)
class BatchMember:
    notification: Notification
    recipient_name: str | None  # None: the recipient was removed since

    def to_json(self) -> BatchMemberJSON:
        summary = self.notification.summary_json()
        return {"id": summary["id"], "recipient_id": summary["recipient_id"], "recipient_name": self.recipient_name,
                "status": summary["status"], "channel": summary["channel"],
                "attempt_count": summary["attempt_count"], "updated_at": summary["updated_at"]}


@dataclass(frozen=True, slots=True)
class Batch:
    id: int
    group: str
    idempotency_key: str | None
    created_at: datetime
    members: tuple[BatchMember, ...]  # by recipient id

    def to_json(self) -> BatchJSON:
        counts = Counter(str(m.notification.status) for m in self.members)
        return {"batch_id": self.id, "group": self.group, "idempotency_key": self.idempotency_key,
                "created_at": iso_at(self.created_at), "counts": dict(sorted(counts.items())),
                "notifications": [m.to_json() for m in self.members]}
