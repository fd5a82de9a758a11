"""SMS delivery receipts: what a carrier's final report means for the failover. Pure, no I/O.

Twilio reports a message's status (``queued``, ``sent``, ``delivered``, ``undelivered``, ``failed``...)
by a signed status callback or on ``GET .../Messages/{sid}.json``. The final ones are decided here:

=========================  ========================================================================
``delivered``              the attempt is ``delivered``; the notification is delivered
``undelivered``/``failed`` the attempt is ``undelivered`` (``undelivered 30005: unknown destination
                           handset``); the codes in ``TRANSIENT_CODES`` are retried per ``[retry]``
                           and then fail over, every other code fails over at once
no final status in time    ``delivered``, noted ``no delivery receipt within N s``
notification cancelled     ``delivered`` (Twilio accepted it: it is paid for and may reach the phone),
                           noted ``notification cancelled while waiting for its delivery receipt``;
                           a final receipt already in is kept (``on_cancel``)
=========================  ========================================================================

The full code table is in docs/sms-receipts.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from daemon.core.models import Outcome

FINAL_STATUSES = frozenset({"delivered", "undelivered", "failed"})
FAILED_STATUSES = frozenset({"undelivered", "failed"})

TRANSIENT_CODES = frozenset({30003, 30008})
"""Handset unreachable (off, out of coverage) and unknown: may work later, so retried on SMS."""

CODE_TEXT = {
    30001: "queue overflow",
    30002: "account suspended",
    30003: "unreachable destination handset",
    30004: "message blocked",
    30005: "unknown destination handset",
    30006: "landline or unreachable carrier",
    30007: "carrier violation (filtered)",
    30008: "unknown error",
    21610: "recipient unsubscribed (replied STOP)",
}


@dataclass(frozen=True, slots=True)
class Receipt:
    """The wait for one accepted SMS's delivery receipt, as the store keeps it."""

    message_sid: str
    notification_id: int
    attempt_id: int
    wait_until: datetime  # the receipt timeout: resolved as delivered (with a note) if nothing final by then
    timeout: float  # the receipt_timeout in force when the SMS was sent, in seconds
    status: str | None = None  # the last status the provider reported, None before any
    error_code: int | None = None
    reported_at: datetime | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


def is_transient(code: int | None) -> bool:
    return code in TRANSIENT_CODES


def describe(status: str, code: int | None) -> str:
    """The attempt's error for a failed receipt: ``undelivered 30005: unknown destination handset``."""
    if code is None:
        return status
    text = CODE_TEXT.get(code)
    return f"{status} {code}: {text}" if text else f"{status} {code}"


def timeout_note(seconds: float) -> str:
    return f"no delivery receipt within {seconds:g} s"


CANCELLED_NOTE = "notification cancelled while waiting for its delivery receipt"


def on_cancel(status: str | None, code: int | None, reported_at: datetime | None) -> tuple[Outcome, str]:
    """The outcome and note of an SMS attempt whose notification was cancelled while it waited for its
    receipt. Not a failure: the provider accepted it, so it is ``delivered`` as with receipts off; a
    final receipt that came in before the cancel (the row not yet claimed) is what happened, so it stands."""
    if status == "delivered" and reported_at is not None:
        return Outcome.DELIVERED, f"delivery receipt: delivered at {reported_at.isoformat(timespec='milliseconds')}"
    if status in FAILED_STATUSES:
        return Outcome.UNDELIVERED, describe(status, code)
    return Outcome.DELIVERED, CANCELLED_NOTE
