"""What the TUI knows about the daemon's data, as pure functions over the protocol's JSON.

Nothing here does I/O or imports Textual: the screens feed wire dicts and events in and render
what comes out, and the tests exercise it without a terminal. The shapes and the vocabulary
(statuses, outcomes, channels) are the protocol module's; the TUI does not import the daemon's models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from daemon.protocol import (
    FINAL_STATUSES,
    REDRIVABLE_STATUSES,
    AttemptJSON,
    Channel,
    Event,
    NotificationJSON,
    NotificationSummaryJSON,
    Outcome,
    RecipientJSON,
    Status,
)

Notification = NotificationJSON
Recipient = RecipientJSON

CHANNELS: tuple[Channel, ...] = tuple(Channel)
STATUSES: tuple[Status, ...] = tuple(Status)
__all__ = ["CHANNELS", "FINAL_STATUSES", "REDRIVABLE_STATUSES", "STATUSES", "Notification", "Recipient"]
TUI_KEY_PREFIX = "tui-"  # idempotency keys the send form makes up


def is_final(notification: Notification) -> bool:
    return notification["status"] in FINAL_STATUSES


# -- live events ------------------------------------------------------------------------------

def notification_id_of(event: Event) -> int | None:
    """The notification an event is about, or None for recipient and stream events."""
    if event["event"] in ("attempt.started", "attempt.finished"):
        return event["data"]["notification_id"]
    if event["event"] in ("notification.created", "notification.status"):
        return event["data"]["id"]
    return None


def from_summary(summary: NotificationSummaryJSON) -> Notification:
    """A notification announced by ``notification.created``: nothing attempted yet."""
    return {**summary, "attempts": []}


def apply_event(notification: Notification, event: Event) -> Notification:
    """The notification after one stream event about it (a new dict; the input is not changed).

    ``attempt.started`` adds an in-flight attempt, ``attempt.finished`` replaces it (or adds a
    skipped one, which never started), ``notification.status`` carries the new status and channel.
    """
    updated = notification.copy()
    attempts: list[AttemptJSON] = [a.copy() for a in notification["attempts"]]
    if event["event"] == "attempt.started":
        started = event["data"]
        if not any(a["id"] == started["attempt_id"] for a in attempts):
            attempts.append({"id": started["attempt_id"], "notification_id": started["notification_id"],
                             "channel": started["channel"], "outcome": None, "error": None,
                             "provider_message_id": None, "started_at": event["at"], "finished_at": None,
                             "retry_at": None, "duration_ms": None})
        updated["channel"] = started["channel"] or updated["channel"]
        if updated["status"] == Status.QUEUED:
            updated["status"] = Status.SENDING
    elif event["event"] == "attempt.finished":
        attempt = event["data"]
        index = next((i for i, a in enumerate(attempts) if a["id"] == attempt["id"]), None)
        if index is None:
            attempts.append(attempt)
        else:
            attempts[index] = attempt
        if attempt["retry_at"]:
            updated["next_attempt_at"] = attempt["retry_at"]
    elif event["event"] in ("notification.created", "notification.status"):
        # a status change made through the API carries the whole summary, the engine's only the status
        # and channel; the attempt count and log are worked out below, from the events
        updated = {**updated, **event["data"]}
    updated["attempts"] = attempts
    updated["attempt_count"] = max(len(attempts), notification["attempt_count"])
    return updated


# -- the home table's filters -----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class NotificationFilter:
    """What the operator narrowed the notifications table to; also the ``list`` op's params."""

    status: str | None = None
    recipient_id: int | None = None
    search: str = ""

    def list_params(self, before_id: int | None, limit: int) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if self.status:
            params["status"] = self.status
        if self.recipient_id is not None:
            params["recipient_id"] = self.recipient_id
        if self.search.strip():
            params["search"] = self.search.strip()
        if before_id is not None:
            params["before_id"] = before_id
        return params

    def matches(self, notification: NotificationSummaryJSON) -> bool:
        """Whether a notification announced live belongs in the filtered table."""
        if self.status and notification.get("status") != self.status:
            return False
        if self.recipient_id is not None and notification.get("recipient_id") != self.recipient_id:
            return False
        needle = self.search.strip().lower()
        return not needle or needle in str(notification.get("text") or "").lower()

    @property
    def is_empty(self) -> bool:
        return self == NotificationFilter()


# -- recipients ---------------------------------------------------------------------------------

def reachable_channels(recipient: Recipient) -> list[Channel]:
    """The channels this recipient has an address for and has not opted out of."""
    opted_out = set(recipient.get("opt_out") or [])
    has = {
        Channel.TELEGRAM: recipient.get("telegram_chat_id") is not None and not recipient.get("telegram_blocked"),
        Channel.EMAIL: bool(recipient.get("email")),
        Channel.SMS: bool(recipient.get("phone")),
    }
    return [c for c in CHANNELS if has[c] and c not in opted_out]


def recipient_matches(recipient: Recipient, query: str) -> bool:
    """Search by name, email, phone or id, case-insensitively."""
    needle = query.strip().lower()
    if not needle:
        return True
    haystack = " ".join(str(recipient.get(k) or "") for k in ("name", "email", "phone", "id")).lower()
    return all(part in haystack for part in needle.split())


def recipient_params(values: dict[str, str], opt_out: Sequence[str]) -> dict[str, Any]:
    """``recipient.add`` / ``recipient.update`` params from the edit form's text fields.

    Empty email / phone / chat id / quiet hours mean "none" (the daemon clears them), an empty time zone
    is UTC; the chat id stays text when it is not a number, so the daemon's validation names the field.
    """
    params: dict[str, Any] = {"name": values.get("name", "").strip()}
    for key in ("email", "phone"):
        params[key] = values.get(key, "").strip() or None
    chat = values.get("telegram_chat_id", "").strip()
    params["telegram_chat_id"] = int(chat) if chat.lstrip("-").isdigit() else (chat or None)
    params["opt_out"] = list(opt_out)
    # what the daemon makes of an empty field (its rules check the rest and name the field when they refuse)
    params["timezone"] = values.get("timezone", "").strip() or "UTC"
    params["quiet_hours"] = values.get("quiet_hours", "").strip() or None
    return params


# -- channel health -------------------------------------------------------------------------------

def channel_verdict(counts: dict[str, Any]) -> str:
    """One word an operator reads at a glance: disabled, down, idle, ok, degraded or failing."""
    if not counts.get("enabled"):
        return "disabled"
    if (counts.get("breaker") or {}).get("state") == "open":
        return "down"  # the circuit breaker skips it: notifications fail over at once
    delivered = int(counts.get(Outcome.DELIVERED) or 0)
    trouble = int(counts.get(Outcome.RETRY) or 0) + int(counts.get(Outcome.FAILED) or 0)
    if delivered == 0 and trouble == 0:
        return "idle"
    if delivered == 0:
        return "failing"
    return "degraded" if trouble else "ok"


def changed_fields(original: Mapping[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Only what the form changed: re-sending an unchanged chat id would unblock a blocked chat."""
    changed: dict[str, Any] = {}
    for key, value in params.items():
        before = original.get(key)
        if key == "opt_out":
            if sorted(value or []) != sorted(before or []):
                changed[key] = value
        elif value != before:
            changed[key] = value
    return changed
