"""The delivery engine: claims due notifications and walks each along its chain.

The database is the truth. Each notification row carries its chain position, tries on that
channel and ``next_attempt_at``; the engine claims due rows, runs attempts through the channel
adapters, and writes each outcome with the next state in one transaction. The only timer is a
single APScheduler job armed at the earliest ``next_attempt_at`` on disk, so a backlog of any size
costs one job, and at start the timer is simply re-armed from the database.

A notification with an ``ack_timeout`` is not done when Telegram accepts it (if a channel is left
to escalate to): the row stays ``sending`` with ``awaiting_ack`` set and ``next_attempt_at`` at the
ack deadline, on the same timer as retries, so it survives restarts. Coming due that way, the
Telegram attempt is recorded ``unacknowledged`` and the walk goes on to the next channel; the
bot's "Got it" button (``Store.acknowledge``) makes it ``acknowledged`` first and nothing is due.

A notification with a ``deadline`` (``expires_in`` / ``deadline`` on send) gets no attempt after it:
the deadline is checked before every attempt, and a retry that would fall later is due at the
deadline instead. It then ends ``expired``, with one attempt-log entry (outcome ``skipped``, error
"deadline ... passed: not tried") on the channel it would have tried. An ack wait is not cut short;
the escalation after it is what the deadline refuses.

This module imports no provider library: adapters translate their errors into
TransientError / PermanentError, and ``daemon.core.failover.decide`` turns results into steps.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from daemon.core.breaker import BreakerSettings, BreakerState, CircuitBreaker
from daemon.core.channel import ChannelAdapter, OutgoingMessage
from daemon.core.errors import PermanentError, StorageError, TransientError
from daemon.core.events import EventBus
from daemon.core.failover import (
    AttemptResult,
    ResultKind,
    RetryPolicy,
    Step,
    StepKind,
    clamp_to_deadline,
    decide,
    expiry,
)
from daemon.core.models import Channel, Notification, Outcome, Recipient, Status, iso, utcnow
from daemon.core.redact import Redactor
from daemon.core.store import AttemptRecord, NotificationUpdate, Store
from daemon.protocol import AttemptJSON

log = logging.getLogger(__name__)

CLAIM_BATCH = 128
WAKEUP_JOB = "wakeup"
STORAGE_RETRY_SECONDS = 1.0
CHANNEL_DOWN = "channel down"
DEFAULT_BREAKER = BreakerSettings()

_FINAL_STATUS = {StepKind.DONE: Status.DELIVERED, StepKind.EXHAUSTED: Status.FAILED, StepKind.EXPIRED: Status.EXPIRED}


class Engine:
    def __init__(
        self,
        store: Store,
        channels: Mapping[Channel, ChannelAdapter],
        policy: RetryPolicy,
        events: EventBus,
        redactor: Redactor,
        *,
        max_in_flight: int = 256,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
        breaker: BreakerSettings = DEFAULT_BREAKER,
    ) -> None:
        self.store = store
        self.channels = dict(channels)
        self.policy = policy
        self.events = events
        self.redact = redactor
        self.max_in_flight = max_in_flight
        self.clock = clock
        self.rng = rng or random.Random()
        self.breakers = {channel: CircuitBreaker(breaker) for channel in Channel}
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        self._stopping = False
        self.paused = False  # held by an operator: accept and store, but start no attempt

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        recovered = await self.store.recover_interrupted(self.clock())
        if recovered:
            log.warning("%d attempt(s) were in flight when the daemon stopped: marked interrupted, will retry",
                        recovered)
        self._scheduler.start()
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="engine-dispatch")
        self.poke()

    async def stop(self, grace: float) -> None:
        """Stop claiming; let in-flight attempts finish within ``grace`` seconds; record the rest."""
        self._stopping = True
        self._wake.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        if self._dispatcher is not None:
            await self._dispatcher
        if self._tasks:
            log.info("waiting up to %.1f s for %d attempt(s) in flight", grace, len(self._tasks))
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if pending:
                # same bookkeeping as after a crash: interrupted, tried again at next start
                await self.store.recover_interrupted(self.clock())
                log.warning("%d attempt(s) did not finish in time: recorded as interrupted", len(pending))

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def pause(self) -> None:
        """Hold delivery (maintenance, a known outage): sends are still accepted and stored.
        In memory only: a restarted daemon delivers again."""
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self.poke()

    def poke(self) -> None:
        """Something may be due now (a new send, a redrive, a timer)."""
        self._wake.set()

    def replace_channels(self, channels: Mapping[Channel, ChannelAdapter]) -> set[asyncio.Task[None]]:
        """Use ``channels`` from the next attempt on (config reload); returns the attempts in
        flight, which may still be using the old adapters and decide when those can be closed."""
        self.channels = dict(channels)
        return set(self._tasks)

    # -- dispatch ----------------------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self._claim_and_spawn()
                await self._arm_timer()
            except StorageError as exc:
                log.error("dispatch paused: %s; retrying in %.0f s", exc, STORAGE_RETRY_SECONDS)
                self._arm_at(self.clock() + timedelta(seconds=STORAGE_RETRY_SECONDS))

    async def _claim_and_spawn(self) -> None:
        while not self._stopping and not self.paused:
            room = min(self.max_in_flight - len(self._tasks), CLAIM_BATCH)
            if room <= 0:
                return  # a finishing attempt pokes us
            batch = await self.store.claim_due(self.clock(), room)
            for notification in batch:
                task = asyncio.create_task(self._run(notification), name=f"notification-{notification.id}")
                self._tasks.add(task)
                task.add_done_callback(self._task_done)
            if len(batch) < room:
                return

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not self._stopping:
            self._wake.set()

    async def _arm_timer(self) -> None:
        if self.paused:
            return  # resume() pokes
        due = await self.store.next_due_time()
        if due is None:
            if self._scheduler.get_job(WAKEUP_JOB):
                self._scheduler.remove_job(WAKEUP_JOB)
        elif due > self.clock():
            self._arm_at(due)
        elif len(self._tasks) < self.max_in_flight:
            self._wake.set()  # claimed up to the batch size and more is due

    def every(self, seconds: float, job_id: str, func: Callable[[], Awaitable[None]], first_in: float) -> None:
        """Housekeeping (the retention prune) on the engine's scheduler: ``func`` every ``seconds``,
        first ``first_in`` seconds from now. Call after ``start``."""
        self._scheduler.add_job(func, IntervalTrigger(seconds=seconds), id=job_id, replace_existing=True,
                                next_run_time=self.clock() + timedelta(seconds=first_in), coalesce=True,
                                max_instances=1, misfire_grace_time=None)

    def _arm_at(self, when: datetime) -> None:
        if self._stopping:
            return
        self._scheduler.add_job(
            self._timer_fired, DateTrigger(run_date=when), id=WAKEUP_JOB, replace_existing=True,
            misfire_grace_time=None, coalesce=True,
        )

    async def _timer_fired(self) -> None:  # a coroutine: the asyncio executor runs it on the loop
        self._wake.set()

    # -- one notification ----------------------------------------------------------------------

    async def _run(self, notification: Notification) -> None:
        try:
            await self._walk(notification)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("notification %d: unexpected error; it stays claimed until restart", notification.id)

    async def _walk(self, n: Notification) -> None:
        recipient = await self.store.get_recipient(n.recipient_id)
        position, tries, status = n.position, n.tries_on_channel, n.status
        if n.ack_timeout is not None and await self.store.awaiting_ack(n.id):
            status = await self._unacknowledged(n, position, status)
            if status.is_final:
                return
            position, tries = position + 1, 0
        while True:
            channel = n.chain[position]
            attempt_id: int | None = None
            sent_at: datetime | None = None
            expired = expiry(n.deadline, self.clock(), position, tries)
            if expired is not None:  # checked before every attempt: none is made after the deadline
                result, step = AttemptResult.skipped(f"deadline {iso(n.deadline)} passed: not tried"), expired
            else:
                adapter = self.channels.get(channel)
                reason = _unavailable(adapter, recipient)
                if reason is None and not self.breakers[channel].allow():
                    reason = CHANNEL_DOWN
                if reason is not None:
                    result = AttemptResult.skipped(reason)
                else:
                    assert adapter is not None and recipient is not None
                    tries += 1
                    attempt_id = await self.store.start_attempt(n.id, channel, self.clock(), tries)
                    self.events.publish("attempt.started", {"notification_id": n.id, "attempt_id": attempt_id,
                                                            "channel": str(channel)})
                    # pace right before the provider call: a commit between the two would bunch sends up
                    await adapter.wait_turn(recipient)
                    sent_at = self.clock()  # the attempt's timing is the provider call, not the wait
                    result = await self._send(adapter, n, recipient)
                    self._breaker_saw(channel, result)
                step = decide(len(n.chain), position, tries, result, self.policy, self.rng)
            now = self.clock()
            record, update = _plan(step, result, now, _ack_wait(n, position), n.deadline, sent_at)
            attempt, new_status = await self.store.finish_attempt(attempt_id, n.id, channel, record, update, now)
            self._report(n, attempt.to_json(), step, status, new_status, update)
            status = new_status
            if update.release and update.next_attempt_at is not None:  # a retry, or the ack deadline
                self._arm_if_earlier(update.next_attempt_at)
            if status.is_final or step.kind is not StepKind.NEXT:
                return
            position, tries = step.position, step.tries

    async def _unacknowledged(self, n: Notification, position: int, status: Status) -> Status:
        """The ack deadline passed without the "Got it" button being pressed: record that against the
        Telegram delivery and go on to the next channel, keeping the claim (as any NEXT step does)."""
        now = self.clock()
        record = AttemptRecord(Outcome.UNACKNOWLEDGED, f"not acknowledged within {n.ack_timeout:g} s")
        if position + 1 < len(n.chain):
            step = Step(StepKind.NEXT, Outcome.UNACKNOWLEDGED, position + 1, 0)
            update = NotificationUpdate(Status.SENDING, position + 1, 0, now, release=False)
        else:  # never armed this way (see _ack_wait), but nothing is left to escalate to
            step = Step(StepKind.EXHAUSTED, Outcome.UNACKNOWLEDGED, position, n.tries_on_channel)
            update = NotificationUpdate(Status.FAILED, position, n.tries_on_channel, None)
        attempt, new_status = await self.store.finish_attempt(None, n.id, n.chain[position], record, update, now)
        self._report(n, attempt.to_json(), step, status, new_status, update)
        return new_status

    async def _send(self, adapter: ChannelAdapter, n: Notification, recipient: Recipient) -> AttemptResult:
        message = OutgoingMessage(n.id, recipient, n.text, n.subject, ack_requested=n.ack_timeout is not None)
        try:
            provider_id = await adapter.send(message)
        except TransientError as exc:
            if exc.rate_limited:
                return AttemptResult.rate_limited(self.redact(str(exc)), exc.retry_after)
            return AttemptResult.transient(self.redact(str(exc)), exc.retry_after)
        except PermanentError as exc:
            if exc.blocked:
                blocked = await self.store.set_telegram_blocked(recipient.id, True)
                self.events.publish("recipient.blocked", blocked.telegram_event())
            return AttemptResult.permanent(self.redact(str(exc)))
        except Exception as exc:  # an adapter bug must not kill the walk: treat it as transient
            log.exception("%s adapter raised unexpectedly", adapter.name)
            return AttemptResult.transient(self.redact(f"unexpected {type(exc).__name__}: {exc}"))
        return AttemptResult.delivered(provider_id)

    def _breaker_saw(self, channel: Channel, result: AttemptResult) -> None:
        breaker = self.breakers[channel]
        before = breaker.state
        if result.kind is ResultKind.TRANSIENT:
            breaker.failure()
        else:  # delivered, refused for good, rate limited: the provider answered
            breaker.success()
        after = breaker.state
        if after is not before:
            if after is BreakerState.OPEN:
                log.warning("%s is down after %d consecutive transient failures: skipped for %.0f s",
                            channel, breaker.failures, breaker.settings.cooldown)
            else:
                log.info("%s breaker %s", channel, after)
            self.events.publish("channel.breaker", {"channel": str(channel), **breaker.to_json()})

    def _arm_if_earlier(self, when: datetime) -> None:
        job = self._scheduler.get_job(WAKEUP_JOB) if self._scheduler.running else None
        if job is None or job.next_run_time is None or when < job.next_run_time:
            self._arm_at(when)

    def _report(self, n: Notification, attempt: AttemptJSON, step: Step, old: Status, new: Status,
                update: NotificationUpdate) -> None:
        then = f", retry in {step.delay:.1f} s" if step.kind is StepKind.RETRY else ""
        if update.awaiting_ack:
            then = f", waiting {n.ack_timeout:g} s for an acknowledgement"
        log.info(
            "notification %d -> recipient %d: %s %s in %s ms%s%s",
            n.id, n.recipient_id, attempt["channel"], attempt["outcome"], attempt["duration_ms"],
            f" ({attempt['error']})" if attempt["error"] else "", then,
        )
        self.events.publish("attempt.finished", {"notification_id": n.id, **attempt})
        if update.awaiting_ack:
            self.events.publish("notification.awaiting_ack", {
                "id": n.id, "recipient_id": n.recipient_id, "until": iso(update.next_attempt_at)})
        if new is not old:
            self.events.publish("notification.status", {"id": n.id, "recipient_id": n.recipient_id,
                                                        "status": str(new), "channel": attempt["channel"]})


def _unavailable(adapter: ChannelAdapter | None, recipient: Recipient | None) -> str | None:
    if recipient is None:
        return "recipient was removed"
    if adapter is None:
        return "channel disabled"
    return adapter.unavailable_reason(recipient)


def _ack_wait(n: Notification, position: int) -> float | None:
    """Seconds to wait for the "Got it" button after a delivery at ``position``, or None: only the
    Telegram message carries the button, and only a channel left to escalate to makes waiting useful
    (without one the delivery ends the notification; a later press still acknowledges it)."""
    if n.ack_timeout is None or n.chain[position] is not Channel.TELEGRAM or position + 1 >= len(n.chain):
        return None
    return n.ack_timeout


def _plan(
    step: Step,
    result: AttemptResult,
    now: datetime,
    ack_wait: float | None = None,
    deadline: datetime | None = None,
    sent_at: datetime | None = None,
) -> tuple[AttemptRecord, NotificationUpdate]:
    """Turn a decision into what is written: the attempt's record and the notification's next state.
    A retry that would fall after ``deadline`` comes due at the deadline, and then expires."""
    error = result.error
    if step.note:
        error = f"{error}; {step.note}" if error else step.note
    retry_at = now + timedelta(seconds=step.delay) if step.kind is StepKind.RETRY else None
    record = AttemptRecord(step.outcome, error, result.provider_message_id, retry_at, sent_at)
    if step.kind is StepKind.NEXT:  # keep the claim: this task goes straight on to the next channel
        update = NotificationUpdate(Status.SENDING, step.position, step.tries, now, release=False)
    elif step.kind is StepKind.RETRY:
        assert retry_at is not None
        update = NotificationUpdate(Status.SENDING, step.position, step.tries, clamp_to_deadline(retry_at, deadline))
    elif step.kind is StepKind.DONE and ack_wait is not None:
        # delivered, but not done: the row comes due again at the ack deadline (a timer that survives
        # restarts like any retry) and is then escalated, unless the button was pressed by then
        update = NotificationUpdate(Status.SENDING, step.position, step.tries, now + timedelta(seconds=ack_wait),
                                    awaiting_ack=True)
    else:
        update = NotificationUpdate(_FINAL_STATUS[step.kind], step.position, step.tries, None)
    return record, update
