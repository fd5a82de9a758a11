"""The delivery engine: claims due notifications and walks each along its chain.

The database is the truth. Each notification row carries its chain position, tries on that
channel and ``next_attempt_at``; the engine claims due rows, runs attempts through the channel
adapters, and writes each outcome with the next state in one transaction. The only timer is a
single APScheduler job armed at the earliest ``next_attempt_at`` on disk, so a backlog of any size
costs one job, and at start the timer is simply re-armed from the database.

What happens next (skip, retry, next channel, the wait for an ack, the deadline) is decided by
``daemon.failover``, a pure module: the engine gathers the facts into a ``Situation`` (the row,
the recipient, which adapters exist, which breakers are open, the time), calls the adapters when
told to send, and writes the ``Plan`` it gets back. An ack wait rides the same timer as retries:
the row stays ``sending`` with ``awaiting_ack`` set and ``next_attempt_at`` at the ack deadline,
so it survives restarts.

With ``[bundle] window`` set, a send below ``high`` priority waits in its recipient's window and goes
out with the others as one message: ``daemon.core.bundle`` (the rules) and ``engine_bundle`` (the I/O).

Time comes from the injected ``clock`` (and ``monotonic`` for the breakers), so tests can run the
engine on a fake clock: advance it, then ``run_due()`` (or ``poke()`` a started engine).

This module imports no provider library: adapters translate their errors into
TransientError / PermanentError, and this module turns those into an ``AttemptResult``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from daemon.core import engine_writes as writes
from daemon.core import failover
from daemon.core.breaker import BreakerSettings, CircuitBreaker
from daemon.core.bundle import BundlePolicy
from daemon.core.channel import ChannelAdapter, OutgoingMessage
from daemon.core.engine_bundle import Bundler
from daemon.core.errors import LeaseLost, PermanentError, StorageError, TransientError
from daemon.core.events import EventBus
from daemon.core.failover import AttemptResult, Plan, RetryPolicy, Send, Situation, StepKind
from daemon.core.models import Channel, Notification, Recipient, Status, utcnow
from daemon.core.outcomes import breaker_saw
from daemon.core.redact import Redactor
from daemon.core.sms_caps import SmsPolicy, SmsUsage, crossed_warning, day_start, usage_since
from daemon.core.sms_receipt import Receipt
from daemon.core.sms_segments import sms_segments
from daemon.core.store import Store, new_owner_id

log = logging.getLogger(__name__)

CLAIM_BATCH = 128
REFILL_PARTS = 8  # at the in-flight cap, claim again when an eighth of it is free (a write and two reads each)
WAKEUP_JOB = "wakeup"
LEASE_JOB = "leases"
DEFAULT_LEASE = 30.0
STORAGE_RETRY_SECONDS = 1.0
RELEASE_RETRY_MAX = 30.0
DEFAULT_BREAKER = BreakerSettings()


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
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        breaker: BreakerSettings = DEFAULT_BREAKER,
        owner: str | None = None,
        lease: float = DEFAULT_LEASE,
        sms: SmsPolicy | None = None,
        bundle: BundlePolicy | None = None,
    ) -> None:
        self.store = store
        self.channels = dict(channels)
        self.policy = policy
        self.events = events
        self.redact = redactor
        self.max_in_flight = max_in_flight
        self.clock = clock
        self.rng = rng or random.Random()
        self.breakers = {channel: CircuitBreaker(breaker, monotonic) for channel in Channel}
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.owner = owner or new_owner_id()  # the daemon id this engine claims notifications under
        self.lease = lease  # seconds a claim holds without renewal
        self._held: dict[asyncio.Task[None], int] = {}  # each task in flight -> the notification it holds
        self._dispatcher: asyncio.Task[None] | None = None
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        self._stopping = False
        self.paused = False  # held by an operator: accept and store, but start no attempt
        self.sms = sms or SmsPolicy()  # delivery receipts and the caps; replaced on a config reload
        self.bundle = bundle or BundlePolicy()  # [bundle]: replaced on a config reload too
        self.bundler = Bundler(self)  # its windows, and sending them (daemon.core.engine_bundle)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.paused = await self.store.get_paused()  # a pause outlives restarts, and holds cluster-wide
        if self.paused:
            log.warning("delivery is paused (fnotify pause): sends are stored, none is attempted until"
                        " fnotify resume")
        recovered = await self.store.recover_interrupted(self.clock(), self.owner)
        if recovered:
            log.warning("%d attempt(s) were in flight when the daemon stopped: marked interrupted, will retry",
                        recovered)
        self._scheduler.start()
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="engine-dispatch")
        self.every(self.lease / 3, LEASE_JOB, self._renew_leases, first_in=self.lease / 3)
        self.poke()

    async def stop(self, grace: float) -> None:
        """Stop claiming; let in-flight attempts finish within ``grace`` seconds; record the rest."""
        self._stopping = True
        self._wake.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        if self._dispatcher is not None:
            await self._dispatcher
        await self.bundler.release_all()
        if self._tasks:
            log.info("waiting up to %.1f s for %d attempt(s) in flight", grace, len(self._tasks))
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if pending:
                # same bookkeeping as after a crash: interrupted, tried again at next start
                await self.store.recover_interrupted(self.clock(), self.owner)
                log.warning("%d attempt(s) did not finish in time: recorded as interrupted", len(pending))

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def pause(self) -> None:
        """Hold delivery (maintenance, a known outage): sends are still accepted and stored. This sets
        this engine's flag; the service stores it (``Store.set_paused``) for the other daemons and restarts."""
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self.poke()

    async def refresh_paused(self) -> None:
        """Follow the stored pause flag (another daemon's ``pause``/``resume`` whose hint was lost)."""
        paused = await self.store.get_paused()
        if paused != self.paused:
            log.info("delivery %s by another daemon", "paused" if paused else "resumed")
            if paused:
                self.pause()
            else:
                self.resume()

    def poke(self) -> None:
        """Something may be due now (a new send, a redrive, a timer)."""
        self._wake.set()

    def hint_due(self, when: datetime) -> None:
        """Another daemon says a notification is due at ``when`` (a hint: the timer is the backstop)."""
        if when <= self.clock():
            self.poke()
        elif not self.paused:
            self._arm_if_earlier(when)

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
                self.bundler.close_due()
                await self._arm_timer()
            except StorageError as exc:
                log.error("dispatch paused: %s; retrying in %.0f s", exc, STORAGE_RETRY_SECONDS)
                self._arm_at(self.clock() + timedelta(seconds=STORAGE_RETRY_SECONDS))

    async def _claim_and_spawn(self) -> None:
        while not self._stopping and not self.paused:
            room = min(self.max_in_flight - len(self._tasks), CLAIM_BATCH)
            if room < self._refill:
                return  # a finishing attempt pokes us
            now = self.clock()
            batch = await self.store.claim_due(now, room, self.owner, now + timedelta(seconds=self.lease))
            # the batch's recipients in one read, not one per walk (a thread hop each on SQLite); should
            # that fail, each walk reads its own, and handles the error as it always did
            recipients: Mapping[int, Recipient] | None = None
            if batch:
                with contextlib.suppress(StorageError):
                    recipients = await self.store.get_recipients({n.recipient_id for n in batch})
            for notification in batch:
                walk = self._run(notification, recipients=recipients)
                task = asyncio.create_task(walk, name=f"notification-{notification.id}")
                self._tasks.add(task)
                self._held[task] = notification.id
                task.add_done_callback(self._held.pop)  # its lease is renewed until the task is done
                task.add_done_callback(self._task_done)
            if len(batch) < room:
                return

    @property
    def _refill(self) -> int:  # at the cap, claim when this many walks are done: a claim per walk cost more
        return max(1, min(self.max_in_flight // REFILL_PARTS, CLAIM_BATCH))

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not self._stopping and self.max_in_flight - len(self._tasks) >= self._refill:
            self._wake.set()

    async def run_due(self) -> int:
        """Claim what is due by the engine's clock (and send the bundling windows that have closed) and walk
        it until it waits (a retry, an ack, a window) or ends; return how many tasks that made. The dispatcher
        does this on every wake-up without waiting; tests call it on a fake clock to run due work
        deterministically, without timers or sleeps."""
        before = set(self._tasks)
        await self._claim_and_spawn()
        self.bundler.close_due()
        claimed = self._tasks - before
        await asyncio.gather(*claimed)  # _run logs whatever a walk raises
        return len(claimed)

    async def _arm_timer(self) -> None:
        if self.paused:
            return  # resume() pokes
        times = (await self.store.next_due_time(), self.bundler.windows.next_close())  # a row, or a window's end
        due = min((t for t in times if t is not None), default=None)
        if due is None:
            if self._scheduler.get_job(WAKEUP_JOB):
                self._scheduler.remove_job(WAKEUP_JOB)
        elif due > self.clock():
            self._arm_at(due)
        elif self.max_in_flight - len(self._tasks) >= self._refill:
            self._wake.set()  # claimed up to the batch size and more is due

    def every(self, seconds: float, job_id: str, func: Callable[[], Awaitable[None]], first_in: float) -> None:
        """Housekeeping (the retention prune) on the engine's scheduler: ``func`` every ``seconds``,
        first ``first_in`` seconds from now. Call after ``start``."""
        self._scheduler.add_job(func, IntervalTrigger(seconds=seconds), id=job_id, replace_existing=True,
                                next_run_time=utcnow() + timedelta(seconds=first_in), coalesce=True,
                                max_instances=1, misfire_grace_time=None)

    async def _renew_leases(self) -> None:
        """Every lease / 3: follow the stored pause flag, extend the leases of the notifications being
        worked on, then look for due work, which includes the rows of a daemon that died once its leases
        have run out (the claim takes them)."""
        try:
            await self.refresh_paused()
        except StorageError as exc:
            log.error("reading the pause flag failed: %s", exc)
        ids = set(self._held.values()) | self.bundler.held()
        if ids:
            try:
                held = await self.store.renew_leases(self.owner, ids, self.clock() + timedelta(seconds=self.lease))
            except StorageError as exc:
                log.error("renewing the leases of %d notification(s) failed: %s", len(ids), exc)
            else:
                lost = sorted((ids - held) & set(self._held.values()))  # still running here, held elsewhere
                if lost:
                    log.warning("lost the lease on notification(s) %s: another daemon took them over", lost)
        self.poke()

    def _arm_at(self, when: datetime) -> None:
        self._set_timer(self._scheduler_time(when))

    def _arm_if_earlier(self, when: datetime) -> None:
        at = self._scheduler_time(when)
        job = self._scheduler.get_job(WAKEUP_JOB) if self._scheduler.running else None
        if job is None or job.next_run_time is None or at < job.next_run_time:
            self._set_timer(at)

    def _scheduler_time(self, when: datetime) -> datetime:
        """``when`` on the engine's clock as a time on APScheduler's, which is the real one: the same
        distance from now. With the real clock the two agree; with an injected clock (tests) a timer
        neither fires at once over and over nor never, and advancing the clock then ``poke()`` runs
        whatever came due."""
        return utcnow() + (when - self.clock())

    def _set_timer(self, run_date: datetime) -> None:
        if self._stopping or not self._scheduler.running:
            return  # not started (tests driving run_due), or stopping: start() re-arms from the database
        self._scheduler.add_job(
            self._timer_fired, DateTrigger(run_date=run_date), id=WAKEUP_JOB, replace_existing=True,
            misfire_grace_time=None, coalesce=True,
        )

    async def _timer_fired(self) -> None:  # a coroutine: the asyncio executor runs it on the loop
        self._wake.set()

    # -- one notification ----------------------------------------------------------------------

    async def _run(self, notification: Notification, join: bool = True,
                   recipients: Mapping[int, Recipient] | None = None) -> None:
        try:
            await self._walk(notification, join, recipients)
        except asyncio.CancelledError:
            raise
        except LeaseLost as exc:  # our lease ran out while the attempt ran: the other daemon's record stands
            log.warning("notification %d: %s; this daemon's result is not recorded", notification.id, exc)
        except Exception as exc:
            # a write refused (disk full) or a bug: hand the row back to the timer rather than strand it
            # claimed until a restart; backoff_max apart, so a row that always fails cannot spin
            delay = max(self.policy.backoff_max, STORAGE_RETRY_SECONDS)
            log.exception("notification %d: unexpected error; tried again in %.0f s", notification.id, delay)
            await self._release(notification.id, delay, self.redact(f"walk stopped by {type(exc).__name__}: {exc}"))

    async def _release(self, notification_id: int, delay: float, error: str) -> None:
        """Release the claim (its open attempt ``interrupted``), the row due in ``delay`` s. While the
        database refuses that too, keep trying: at stop, the restart's recovery does the same."""
        wait = STORAGE_RETRY_SECONDS
        while not self._stopping:
            try:
                now = self.clock()
                await self.store.release_claim(notification_id, now, now + timedelta(seconds=delay), error, self.owner)
                return
            except LeaseLost:  # another daemon took the row over meanwhile: it is not ours to release
                return
            except StorageError as exc:
                log.error("notification %d: cannot release its claim (%s); trying again in %.0f s",
                          notification_id, exc, wait)
            except Exception:
                log.exception("notification %d: cannot release its claim; it stays claimed until restart",
                              notification_id)
                return
            await asyncio.sleep(wait)
            wait = min(wait * 2, RELEASE_RETRY_MAX)

    async def _walk(self, n: Notification, join: bool = True,
                    recipients: Mapping[int, Recipient] | None = None) -> None:
        """Gather the facts, ask ``daemon.failover`` what to do, do it, write what it says; again
        while it says "next channel". Every rule is there: nothing here decides anything. A send that
        ``daemon.core.bundle`` bundles waits in a window instead (unless ``join`` is False: the first
        step of a window's lone member)."""
        # ``recipients``: read with the claim (one absent does not exist); else read it now
        recipient = (recipients.get(n.recipient_id) if recipients is not None
                     else await self.store.get_recipient(n.recipient_id))
        ack_due = n.ack_timeout is not None and await self.store.awaiting_ack(n.id)
        # a receipt is awaited only by an SMS already sent from where the row stands (AWAIT_RECEIPT keeps
        # the position and counts the try): any other row, a fresh one above all, skips the read
        receipt = (await self.store.pending_receipt(n.id)
                   if n.current_channel is Channel.SMS and n.tries_on_channel > 0 else None)
        position, tries, status = n.position, n.tries_on_channel, n.status
        skipped: Plan | None = None  # a skip held back: written with the next attempt's start (engine_writes)
        while True:
            usage = await self._sms_usage(n, recipient, position)
            situation = self._situation(n, recipient, position, tries, ack_due, receipt, usage)
            decision = failover.before_attempt(situation)
            bundled = isinstance(decision, Send) and join and self.bundler.joins(n, decision, situation)
            if skipped is not None and (bundled or not isinstance(decision, Send)):  # no start follows it here
                status, skipped = await writes.finish(self, n, skipped, None, status), None
            if bundled and isinstance(decision, Send):
                self.bundler.join(n, decision.channel)
                return
            join = True
            attempt_id: int | None = None
            if isinstance(decision, Send):
                attempt_id, status, plan = await self._attempt(n, situation, decision, skipped, status)
                skipped = None
                if plan is None:
                    return  # final already (cancelled while walked): nothing started
            elif writes.can_wait(decision):
                skipped, position, tries = decision, decision.update.position, decision.update.tries
                ack_due, receipt = False, None
                continue
            else:
                plan = decision
            if plan.kind is StepKind.AWAIT_RECEIPT:
                await writes.await_receipt(self, n, plan, attempt_id)
                return
            if plan.block_recipient:
                blocked = await self.store.set_telegram_blocked(n.recipient_id, True)
                self.events.publish("recipient.blocked", blocked.telegram_event())
            status = await writes.finish(self, n, plan, attempt_id if attempt_id is not None else plan.attempt_id,
                                         status)
            if status.is_final or not plan.goes_on:
                return
            position, tries, ack_due, receipt = plan.update.position, plan.update.tries, False, None

    def _situation(self, n: Notification, recipient: Recipient | None, position: int, tries: int,
                   ack_due: bool, receipt: Receipt | None = None, usage: SmsUsage | None = None) -> Situation:
        return Situation(
            n.chain, position, tries, self.clock(), recipient, frozenset(self.channels),
            frozenset(channel for channel, breaker in self.breakers.items() if not breaker.allows()),
            self.policy, n.deadline, n.ack_timeout, ack_due, self.sms.receipt_timeout, receipt,
            self.sms.caps if usage is not None else None, usage, sms_segments(n.text),
            n.priority,
        )

    async def _sms_usage(self, n: Notification, recipient: Recipient | None, position: int) -> SmsUsage | None:
        """What SMS has cost so far, when SMS is up next under caps (read from the store: every daemon's sends)."""
        if n.chain[position] is not Channel.SMS or recipient is None or not self.sms.caps.active:
            return None
        now = self.clock()
        return await self.store.sms_usage(recipient.id, usage_since(self.sms.caps, now), day_start(now))

    async def _count_sms(self, recipient: Recipient, text: str, notification_id: int) -> None:
        """An SMS was accepted: it is paid for, so it counts towards the caps (and the 80 % warning)."""
        try:
            before, after = await self.store.record_sms_sent(recipient.id, self.clock(), sms_segments(text))
        except StorageError as exc:  # the message is out: losing one count must not lose its record
            log.error("notification %d: the SMS sent could not be counted towards the caps: %s", notification_id, exc)
            return
        budget = self.sms.caps.daily_budget
        if budget is not None and crossed_warning(self.sms.caps, before, after):
            log.warning("SMS daily budget: %d of %d segments used today (UTC)", after, budget)
            self.events.publish("sms.budget", {"used": after, "budget": budget})

    async def _attempt(self, n: Notification, situation: Situation, send: Send, skipped: Plan | None,
                       status: Status) -> tuple[int | None, Status, Plan | None]:
        # no await since the situation was read: the adapter and the breaker are the ones it saw
        adapter = self.channels[send.channel]
        self.breakers[send.channel].begin()
        attempt_id, status = await writes.start(self, n, send, skipped, status)
        if attempt_id is None:
            return None, status, None
        # pace right before the provider call: a commit between the two would bunch sends up
        await adapter.wait_turn(send.recipient)
        sent_at = self.clock()  # the attempt's timing is the provider call, not the wait
        message = OutgoingMessage(n.id, send.recipient, n.text, n.subject, ack_requested=send.ack_requested,
                                  validity_period=send.validity_period)
        result = await self._send(adapter, message)
        breaker_saw(self.breakers[send.channel], send.channel, result, self.events)
        if send.channel is Channel.SMS and result.kind is failover.ResultKind.DELIVERED:
            await self._count_sms(send.recipient, n.text, n.id)
        plan = failover.after_attempt(situation, result, self.clock(), sent_at, draw=self.rng.random)
        return attempt_id, status, plan

    async def _send(self, adapter: ChannelAdapter, message: OutgoingMessage) -> AttemptResult:
        """The adapter's answer as an AttemptResult: its errors are already classified."""
        try:
            provider_id = await adapter.send(message)
        except TransientError as exc:
            if exc.rate_limited:
                return AttemptResult.rate_limited(self.redact(str(exc)), exc.retry_after)
            return AttemptResult.transient(self.redact(str(exc)), exc.retry_after)
        except PermanentError as exc:
            return AttemptResult.permanent(self.redact(str(exc)), blocked=exc.blocked)
        except Exception as exc:  # an adapter bug must not kill the walk: treat it as transient
            log.exception("%s adapter raised unexpectedly", adapter.name)
            return AttemptResult.transient(self.redact(f"unexpected {type(exc).__name__}: {exc}"))
        return AttemptResult.delivered(provider_id)
