"""Every rule of what happens next to a notification, as pure functions: no I/O, no clock, no
randomness of its own.

The engine gathers what it knows into a ``Situation`` and asks ``before_attempt``. The answer is
either a ``Plan`` to write without calling a provider, or ``Send``: make the attempt, then ask
``after_attempt`` with the provider's ``AttemptResult``. A ``Plan`` is exactly what the engine
writes: the attempt's record and the notification's next state.

Before an attempt, in this order:

0. an SMS waiting for its delivery receipt came due (the receipt arrived, or its timeout): the receipt
   decides (``daemon.core.sms_receipt``): ``delivered``; ``undelivered`` and retried or on to the next
   channel by its code; or ``delivered`` noted "no delivery receipt within N s"
1. a delivery waiting for the "Got it" button came due: ``unacknowledged``, on to the next channel
   (the ack wait is never cut short by the deadline; the escalation after it is what rule 2 refuses)
2. the deadline has passed: ``skipped`` ("deadline ... passed: not tried") on the channel that
   would have been tried, and the notification is ``expired``
3. quiet hours: a notification below ``high`` priority that comes due inside the recipient's quiet
   hours is not tried: ``held`` (one ``skipped`` entry "quiet hours until 07:00 Europe/Moscow"), due
   again when the window ends (or at the deadline, which then expires it: the deadline wins)
4. the channel cannot serve the recipient: ``skipped`` with the reason, on to the next channel at
   once, without counting a try: the recipient was removed, the channel is disabled, no address
   for it, opted out of it, the bot is blocked (Telegram), or the channel is down (breaker open)
4b. SMS over a cap (``daemon.core.sms_caps``: a per-recipient window, the daily budget): ``skipped``
5. otherwise: send (try number ``tries + 1`` on this channel)

After it:

- delivered: done; but an SMS accepted while receipts are on waits for its receipt (up to
  ``receipt_timeout``, a timer on disk like the ack wait); and a Telegram delivery that asked for an
  ack, with a channel left to escalate
  to, waits ``ack_timeout`` seconds for the button first (a timer on disk, like a retry)
- rate limited (the provider's flood control): ``retry`` after its ``retry_after``; no try counted
- transient with tries left: ``retry`` after the backoff or the provider's ``retry_after``; a retry
  that would fall after the deadline is due at the deadline instead, and then expires
- transient on the last try, or permanent: ``failed``, on to the next channel at once (a
  Telegram "bot blocked" also marks the recipient, so later notifications skip Telegram)
- no channel left: the notification is ``failed``
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from daemon.core import quiet_hours, sms_caps, sms_receipt
from daemon.core.models import AttemptRecord, Channel, NotificationUpdate, Outcome, Priority, Recipient, Status, iso
from daemon.core.sms_caps import SmsCaps, SmsUsage
from daemon.core.sms_receipt import Receipt

RECIPIENT_REMOVED = "recipient was removed"
CHANNEL_DISABLED = "channel disabled"
CHANNEL_DOWN = "channel down"
BOT_BLOCKED = "bot blocked by the user"
NO_ADDRESS = {Channel.TELEGRAM: "no Telegram chat linked", Channel.EMAIL: "no email address",
              Channel.SMS: "no phone number"}
_NAMES = {Channel.TELEGRAM: "Telegram", Channel.EMAIL: "email", Channel.SMS: "SMS"}

MAX_VALIDITY_PERIOD = 14_400
"""Twilio's longest ``ValidityPeriod`` (seconds) that we send: a late SMS is dropped, not delivered hours on."""

RATE_LIMITED_NOTE = "rate limited: not counted as a try"
"""Ends the error of an attempt refused by the provider's flood control (documented in protocol.md)."""


class ResultKind(StrEnum):
    DELIVERED = "delivered"
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    RATE_LIMITED = "rate_limited"  # the provider's flood control: wait, without counting a try


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What a provider call came to, before policy is applied."""

    kind: ResultKind
    error: str | None = None
    provider_message_id: str | None = None
    retry_after: float | None = None  # the provider's own wait, when it gave one
    blocked: bool = False  # permanent because the user blocked the bot

    @classmethod
    def delivered(cls, provider_message_id: str | None) -> AttemptResult:
        return cls(ResultKind.DELIVERED, provider_message_id=provider_message_id)

    @classmethod
    def transient(cls, error: str, retry_after: float | None = None) -> AttemptResult:
        return cls(ResultKind.TRANSIENT, error=error, retry_after=retry_after)

    @classmethod
    def rate_limited(cls, error: str, retry_after: float | None) -> AttemptResult:
        return cls(ResultKind.RATE_LIMITED, error=error, retry_after=retry_after)

    @classmethod
    def permanent(cls, error: str, blocked: bool = False) -> AttemptResult:
        return cls(ResultKind.PERMANENT, error=error, blocked=blocked)

    @property
    def channel_failed(self) -> bool:
        """Does this count against the channel's circuit breaker? Only a transient failure does: a
        permanent refusal (chat not found, invalid number) or a 429 is the provider answering."""
        return self.kind is ResultKind.TRANSIENT


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts_per_channel: int = 3
    backoff_initial: float = 2.0
    backoff_max: float = 60.0
    jitter: float = 0.2  # up to +20% on each wait, so retries of a burst do not land together

    def backoff(self, tries: int, draw: float) -> float:
        """Wait before try number ``tries + 1`` on the same channel (``tries`` >= 1 made so far);
        ``draw`` in [0, 1) picks the jitter."""
        base = min(self.backoff_max, self.backoff_initial * 2.0 ** (tries - 1))
        return base * (1 + draw * self.jitter)

    def honour(self, retry_after: float) -> float:
        """A provider's retry_after is obeyed, within reason (10x backoff_max)."""
        return float(max(0.0, min(retry_after, max(self.backoff_max, 1.0) * 10)))


@dataclass(frozen=True, slots=True)
class Situation:
    """What the engine knows when a notification's next step is due: gathered, never decided."""

    chain: tuple[Channel, ...]
    position: int  # index in chain of the channel up next
    tries: int  # attempts made on that channel so far
    now: datetime
    recipient: Recipient | None  # None: removed since the notification was sent
    enabled: frozenset[Channel]  # channels with an adapter (enabled in the config)
    down: frozenset[Channel]  # channels whose circuit breaker refuses an attempt now
    policy: RetryPolicy
    deadline: datetime | None = None
    ack_timeout: float | None = None
    ack_due: bool = False  # the row came due as the end of an ack wait (``awaiting_ack`` on disk)
    receipt_timeout: float | None = None  # SMS delivery receipts are on: wait this long for one
    receipt: Receipt | None = None  # the row came due while waiting for this SMS delivery receipt
    sms_caps: SmsCaps | None = None  # the caps in force, when the channel up next is SMS
    sms_usage: SmsUsage | None = None  # what was sent, as counted for those caps
    segments: int = 1  # what the SMS would cost, in segments
    priority: Priority = Priority.NORMAL

    @property
    def channel(self) -> Channel:
        return self.chain[self.position]


@dataclass(frozen=True, slots=True)
class Send:
    """Make the attempt: try number ``tries`` on ``channel``, to ``recipient``."""

    channel: Channel
    recipient: Recipient
    tries: int
    ack_requested: bool  # Telegram: attach the "Got it" button
    validity_period: int | None = None  # SMS: seconds the carrier may keep trying (until the deadline)


class StepKind(StrEnum):
    DONE = "done"  # delivered: the notification is final
    AWAIT_ACK = "await_ack"  # delivered on Telegram; escalated at the ack deadline unless acknowledged
    RETRY = "retry"  # same channel after ``delay`` seconds
    NEXT = "next"  # next channel, now, by the same walk
    EXHAUSTED = "exhausted"  # no channel left: the notification failed
    EXPIRED = "expired"  # the deadline passed before the next attempt: the notification expired
    AWAIT_RECEIPT = "await_receipt"  # SMS accepted; the attempt stays open until its delivery receipt
    HOLD = "hold"  # inside the recipient's quiet hours: held until they end (or the deadline)


_FINAL_STATUS = {StepKind.DONE: Status.DELIVERED, StepKind.EXHAUSTED: Status.FAILED, StepKind.EXPIRED: Status.EXPIRED}


@dataclass(frozen=True, slots=True)
class Plan:
    """What to write: the attempt's record (against ``channel``) and the notification's next state."""

    kind: StepKind
    channel: Channel
    record: AttemptRecord
    update: NotificationUpdate
    at: datetime  # when this was decided: the record's finish time
    delay: float = 0.0  # RETRY: seconds until the retry (before any deadline clamp)
    block_recipient: bool = False  # the user blocked the bot: mark the recipient, skip Telegram from now on
    attempt_id: int | None = None  # the attempt left open for a delivery receipt that this plan closes
    message_sid: str | None = None  # AWAIT_RECEIPT: the provider's id the receipt will name

    @property
    def goes_on(self) -> bool:
        """The same walk goes straight on to the next channel (the claim is kept)."""
        return self.kind is StepKind.NEXT


def before_attempt(s: Situation) -> Plan | Send:
    """The step decided without calling a provider (unacknowledged, expired, skipped), or ``Send``."""
    if s.receipt is not None:
        return _receipt_step(s, s.receipt)
    if s.ack_due:
        return _move_on(s, Outcome.UNACKNOWLEDGED, f"not acknowledged within {s.ack_timeout:g} s", s.tries, s.now)
    if s.deadline is not None and s.now >= s.deadline:
        record = AttemptRecord(Outcome.SKIPPED, f"deadline {iso(s.deadline)} passed: not tried")
        return _final(s, StepKind.EXPIRED, record, s.tries, s.now)
    held = _quiet_hold(s)
    if held is not None:
        return held
    reason = unavailable(s.channel, s.recipient, s.enabled, s.down)
    if reason is not None or s.recipient is None:
        return _move_on(s, Outcome.SKIPPED, reason or RECIPIENT_REMOVED, s.tries, s.now)
    if s.channel is Channel.SMS and s.sms_caps is not None and s.sms_usage is not None:
        capped = sms_caps.refusal(s.sms_caps, s.sms_usage, s.now, s.segments)
        if capped is not None:
            return _move_on(s, Outcome.SKIPPED, capped, s.tries, s.now)
    return Send(s.channel, s.recipient, s.tries + 1, ack_requested=s.ack_timeout is not None,
                validity_period=_validity(s))


def after_attempt(s: Situation, result: AttemptResult, now: datetime, sent_at: datetime | None = None, *,
                  draw: Callable[[], float]) -> Plan:
    """The step after the attempt that ``before_attempt(s)`` asked for came to ``result`` (at ``now``;
    the provider call began at ``sent_at``). ``draw`` gives uniform numbers in [0, 1) for the
    backoff's jitter, called only when a backoff is computed (the engine passes ``Random.random``)."""
    tries = s.tries + 1
    policy = s.policy
    if result.kind is ResultKind.DELIVERED:
        record = AttemptRecord(Outcome.DELIVERED, None, result.provider_message_id, None, sent_at)
        if s.receipt_timeout is not None and s.channel is Channel.SMS and result.provider_message_id:
            # accepted is not delivered: the attempt stays open, the row due at the receipt timeout
            # (a timer on disk, like the ack wait); a final receipt makes it due at once
            until = now + timedelta(seconds=s.receipt_timeout)
            update = NotificationUpdate(Status.SENDING, s.position, tries, until)
            return Plan(StepKind.AWAIT_RECEIPT, s.channel, record, update, now,
                        message_sid=result.provider_message_id)
        wait = _ack_wait(s)
        if wait is None:
            return _final(s, StepKind.DONE, record, tries, now)
        # delivered, but not done: the row comes due again at the ack deadline (a timer that survives
        # restarts like any retry) and is then escalated, unless the button was pressed by then
        update = NotificationUpdate(Status.SENDING, s.position, tries, now + timedelta(seconds=wait), awaiting_ack=True)
        return Plan(StepKind.AWAIT_ACK, s.channel, record, update, now)
    if result.kind is ResultKind.RATE_LIMITED:
        # refused unread for sending too fast, not for anything about the message: the try is given
        # back, so pacing trouble never fails a notification over (its deadline still bounds it)
        delay = policy.honour(result.retry_after) if result.retry_after is not None else policy.backoff(1, draw())
        return _retry(s, result, s.tries, delay, now, sent_at, note=RATE_LIMITED_NOTE)
    if result.kind is ResultKind.TRANSIENT and tries < policy.attempts_per_channel:
        delay = policy.honour(result.retry_after) if result.retry_after is not None else policy.backoff(tries, draw())
        return _retry(s, result, tries, delay, now, sent_at)
    error = result.error
    if result.kind is ResultKind.TRANSIENT:
        error = _with_note(error, f"giving up on this channel after {tries} tries")
    return _move_on(s, Outcome.FAILED, error, tries, now, sent_at, block_recipient=result.blocked)


def _quiet_hold(s: Situation) -> Plan | None:
    """Held until the recipient's quiet hours end, or None: not quiet, or urgent enough to go at once.
    The recipient's zone and window were validated when set; a stored one that no longer parses (a zone
    removed from tzdata) holds nothing rather than holding forever."""
    r = s.recipient
    if r is None or r.quiet_hours is None or s.priority.bypasses_quiet_hours:
        return None
    try:
        window, zone = quiet_hours.parse_window(r.quiet_hours), quiet_hours.parse_timezone(r.timezone)
    except ValueError:
        return None
    until = quiet_hours.quiet_until(window, zone, s.now)
    if until is None:
        return None
    # due at the deadline at the latest: rule 2 then expires it on time rather than at the window's end
    due = until if s.deadline is None or until <= s.deadline else s.deadline
    record = AttemptRecord(Outcome.SKIPPED, quiet_hours.describe_hold(until, r.timezone, zone))
    update = NotificationUpdate(Status.HELD, s.position, s.tries, due)
    return Plan(StepKind.HOLD, s.channel, record, update, s.now)


def unavailable(channel: Channel, recipient: Recipient | None, enabled: frozenset[Channel],
                down: frozenset[Channel]) -> str | None:
    """Why ``channel`` cannot serve ``recipient`` now (the skip reason operators read), or None."""
    if recipient is None:
        return RECIPIENT_REMOVED
    if channel not in enabled:
        return CHANNEL_DISABLED
    if recipient.address(channel) is None:
        return NO_ADDRESS[channel]
    if channel in recipient.opt_out:
        return f"opted out of {_NAMES[channel]}"
    if channel is Channel.TELEGRAM and recipient.telegram_blocked:
        return BOT_BLOCKED
    if channel in down:
        return CHANNEL_DOWN
    return None


def _receipt_step(s: Situation, r: Receipt) -> Plan:
    """An SMS's wait for its delivery receipt came due: the receipt (or its absence) decides."""
    if not r.final and s.now < r.wait_until:
        # due early without a final status: keep waiting, the same timer
        update = NotificationUpdate(Status.SENDING, s.position, s.tries, r.wait_until)
        record = AttemptRecord(Outcome.DELIVERED, None, r.message_sid)
        return Plan(StepKind.AWAIT_RECEIPT, s.channel, record, update, s.now, attempt_id=r.attempt_id,
                    message_sid=r.message_sid)
    if r.status == "delivered" or not r.final:
        note = sms_receipt.timeout_note(r.timeout)
        if r.final:
            note = f"delivery receipt: delivered at {iso(r.reported_at)}"
        record = AttemptRecord(Outcome.DELIVERED, note, r.message_sid)
        return _replace_attempt(_final(s, StepKind.DONE, record, s.tries, s.now), r)
    error = sms_receipt.describe(r.status or "undelivered", r.error_code)
    if sms_receipt.is_transient(r.error_code) and s.tries < s.policy.attempts_per_channel:
        delay = s.policy.backoff(s.tries, 0.0)
        retry_at = s.now + timedelta(seconds=delay)
        due = retry_at if s.deadline is None or retry_at <= s.deadline else s.deadline
        record = AttemptRecord(Outcome.UNDELIVERED, error, r.message_sid, retry_at)
        update = NotificationUpdate(Status.SENDING, s.position, s.tries, due)
        return Plan(StepKind.RETRY, s.channel, record, update, s.now, delay=delay, attempt_id=r.attempt_id)
    if sms_receipt.is_transient(r.error_code):
        error = f"{error}; giving up on this channel after {s.tries} tries"
    plan = _move_on(s, Outcome.UNDELIVERED, error, s.tries, s.now)
    return _replace_attempt(plan, r)


def _replace_attempt(plan: Plan, r: Receipt) -> Plan:
    """``plan`` closing the attempt that waited for ``r``, keeping the provider's message id on it."""
    record = AttemptRecord(plan.record.outcome, plan.record.error, r.message_sid, plan.record.retry_at)
    return Plan(plan.kind, plan.channel, record, plan.update, plan.at, plan.delay, plan.block_recipient,
                attempt_id=r.attempt_id)


def _validity(s: Situation) -> int | None:
    """SMS ``ValidityPeriod``: the seconds left to the deadline, at most ``MAX_VALIDITY_PERIOD``."""
    if s.channel is not Channel.SMS or s.deadline is None:
        return None
    left = int((s.deadline - s.now).total_seconds())
    return max(1, min(left, MAX_VALIDITY_PERIOD))


def _ack_wait(s: Situation) -> float | None:
    """Seconds to wait for the "Got it" button after a delivery, or None: only the Telegram message
    carries the button, and only a channel left to escalate to makes waiting useful (without one
    the delivery ends the notification; a later press still acknowledges it)."""
    if s.ack_timeout is None or s.channel is not Channel.TELEGRAM or s.position + 1 >= len(s.chain):
        return None
    return s.ack_timeout


def _retry(s: Situation, result: AttemptResult, tries: int, delay: float, now: datetime, sent_at: datetime | None,
           note: str | None = None) -> Plan:
    retry_at = now + timedelta(seconds=delay)
    # due at the deadline at the latest, so the notification turns expired on time rather than
    # sitting ``sending`` until a retry that will never be made
    due = retry_at if s.deadline is None or retry_at <= s.deadline else s.deadline
    record = AttemptRecord(Outcome.RETRY, _with_note(result.error, note), result.provider_message_id, retry_at, sent_at)
    return Plan(StepKind.RETRY, s.channel, record, NotificationUpdate(Status.SENDING, s.position, tries, due), now,
                delay=delay)


def _move_on(s: Situation, outcome: Outcome, error: str | None, tries: int, now: datetime,
             sent_at: datetime | None = None, *, block_recipient: bool = False) -> Plan:
    """This channel is done with: the next one at once, or the notification failed if none is left."""
    record = AttemptRecord(outcome, error, None, None, sent_at)
    if s.position + 1 >= len(s.chain):
        return _final(s, StepKind.EXHAUSTED, record, tries, now, block_recipient=block_recipient)
    # keep the claim: the same walk goes straight on to the next channel
    update = NotificationUpdate(Status.SENDING, s.position + 1, 0, now, release=False)
    return Plan(StepKind.NEXT, s.channel, record, update, now, block_recipient=block_recipient)


def _final(s: Situation, kind: StepKind, record: AttemptRecord, tries: int, now: datetime, *,
           block_recipient: bool = False) -> Plan:
    """The notification ends here: delivered, failed (exhausted) or expired."""
    update = NotificationUpdate(_FINAL_STATUS[kind], s.position, tries, None)
    return Plan(kind, s.channel, record, update, now, block_recipient=block_recipient)


def _with_note(error: str | None, note: str | None) -> str | None:
    if not note:
        return error
    return f"{error}; {note}" if error else note
