"""The protocol's vocabulary: channels, statuses, priorities and attempt outcomes, as the wire
spells them (the daemon's models use these same enums)."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    """A delivery channel a chain is made of."""

    TELEGRAM = "telegram"
    EMAIL = "email"
    SMS = "sms"


class Status(StrEnum):
    """Lifecycle of a notification: queued -> sending -> a final state; ``held`` waits out the
    recipient's quiet hours (due again at their end), then goes on as ``sending``."""

    QUEUED = "queued"
    SENDING = "sending"
    HELD = "held"
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


# StrEnum members hash and compare as their values, so a plain ``"failed"`` read off the wire is
# found in these sets too
FINAL_STATUSES = frozenset(
    {Status.DELIVERED, Status.ACKNOWLEDGED, Status.FAILED, Status.CANCELLED, Status.EXPIRED}
)
SUCCESS_STATUSES = frozenset({Status.DELIVERED, Status.ACKNOWLEDGED})
REDRIVABLE_STATUSES = frozenset({Status.FAILED, Status.EXPIRED})  # what the ``retry`` op accepts


class Priority(StrEnum):
    """How urgent a notification is: ``high`` and ``critical`` are not held by quiet hours, and a
    backlog is claimed higher priority first."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 (low) .. 3 (critical): what the stores keep and order claims by."""
        return _PRIORITY_ORDER.index(self)

    @classmethod
    def from_rank(cls, rank: int) -> Priority:
        return _PRIORITY_ORDER[rank]

    @property
    def bypasses_quiet_hours(self) -> bool:
        return self.rank >= _PRIORITY_ORDER.index(Priority.HIGH)


_PRIORITY_ORDER = (Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.CRITICAL)


class Outcome(StrEnum):
    """What one attempt on one channel came to."""

    DELIVERED = "delivered"  # the provider accepted the message
    RETRY = "retry"  # transient failure: the same channel is tried again
    FAILED = "failed"  # permanent for this channel: fail over now
    SKIPPED = "skipped"  # the channel cannot serve this recipient
    INTERRUPTED = "interrupted"  # the daemon stopped while the attempt was in flight
    UNACKNOWLEDGED = "unacknowledged"  # delivered but not acknowledged in time
    UNDELIVERED = "undelivered"  # accepted by the SMS provider, then reported undelivered by the carrier
