"""The engine's side of bundling (``[bundle] window``): windows opened, closed and sent as one message.

The rules are in ``daemon.core.bundle`` (pure); ``Bundler`` does the I/O. A member waiting in a window
keeps its claim (its lease renewed with those of the attempts in flight), so a crash or a lost lease
hands it back like any claimed row. When a window closes, each member is read again and asked
``failover.before_attempt`` once more: one cancelled meanwhile is let go, one the rules now hold,
expire or skip walks on alone, and the rest are sent as one message. Each member then gets its own
attempt (started under this daemon's claim: a member whose lease was lost is left to the daemon
that took it) and its own ``after_attempt`` plan, so a failure sends each member along its own
chain, and a retry comes due, and bundles, again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from daemon.core import bundle, failover
from daemon.core.bundle import Window, Windows
from daemon.core.channel import OutgoingMessage
from daemon.core.errors import LeaseLost, StorageError
from daemon.core.failover import Send, Situation
from daemon.core.models import Channel, Notification, iso
from daemon.core.outcomes import breaker_saw, report

if TYPE_CHECKING:
    import random
    from collections.abc import Callable
    from datetime import datetime

    from daemon.core.breaker import CircuitBreaker
    from daemon.core.bundle import BundlePolicy
    from daemon.core.channel import ChannelAdapter
    from daemon.core.events import EventBus
    from daemon.core.failover import AttemptResult, RetryPolicy
    from daemon.core.models import Recipient
    from daemon.core.redact import Redactor
    from daemon.core.sms_caps import SmsPolicy, SmsUsage
    from daemon.core.sms_receipt import Receipt
    from daemon.core.store import Store

log = logging.getLogger(__name__)

STORAGE_RETRY_SECONDS = 1.0  # the engine's floor on the delay before a row an error stopped is tried again


@dataclass(frozen=True, slots=True)
class _Member:
    n: Notification
    situation: Situation
    send: Send


class EngineParts(Protocol):
    """What ``Bundler`` uses of ``daemon.core.engine.Engine`` (named here: the engine imports this module)."""

    store: Store
    channels: dict[Channel, ChannelAdapter]
    breakers: dict[Channel, CircuitBreaker]
    policy: RetryPolicy
    sms: SmsPolicy
    bundle: BundlePolicy
    events: EventBus
    redact: Redactor
    rng: random.Random
    clock: Callable[[], datetime]
    owner: str
    paused: bool
    _stopping: bool
    _tasks: set[asyncio.Task[None]]

    def _task_done(self, task: asyncio.Task[None]) -> None: ...
    def _arm_if_earlier(self, when: datetime) -> None: ...
    async def _run(self, notification: Notification, join: bool = True) -> None: ...
    async def _release(self, notification_id: int, delay: float, error: str) -> None: ...
    async def _sms_usage(self, n: Notification, recipient: Recipient | None, position: int) -> SmsUsage | None: ...
    def _situation(self, n: Notification, recipient: Recipient | None, position: int, tries: int,
                   ack_due: bool, receipt: Receipt | None = None, usage: SmsUsage | None = None) -> Situation: ...
    async def _send(self, adapter: ChannelAdapter, message: OutgoingMessage) -> AttemptResult: ...
    async def _count_sms(self, recipient: Recipient, text: str, notification_id: int) -> None: ...


class Bundler:
    """The engine's bundling windows and the sending of them. A part of ``Engine`` kept in its own module:
    it uses the engine's own steps (the situation, the send, the SMS count) as the engine's walk does."""

    def __init__(self, engine: EngineParts) -> None:
        self.engine = engine
        self.windows = Windows()  # open windows, by recipient and channel
        self._sending: set[int] = set()  # members of the bundles being sent

    def held(self) -> set[int]:
        """The notifications claimed for bundling (waiting, or being sent): their leases are renewed."""
        return self.windows.held() | self._sending

    def joins(self, n: Notification, send: Send, situation: Situation) -> bool:
        """Does this send wait in a window? Never while stopping: nothing would close the window."""
        e = self.engine
        return not e._stopping and bundle.joins(e.bundle, send, n.priority, n.deadline, situation.now,
                                                e.sms.receipt_timeout is not None)

    def join(self, n: Notification, channel: Channel) -> None:
        e = self.engine
        window = self.windows.join(n.recipient_id, channel, n.id, e.clock(), e.bundle.window)
        if len(window.members) == 1:
            log.info("recipient %d: bundling %s notifications until %s (notification %d opened the window)",
                     n.recipient_id, channel, iso(window.closes_at), n.id)
        e._arm_if_earlier(window.closes_at)

    def close_due(self) -> None:
        """Send the windows that have closed. A pause holds them (still claimed) until ``resume``."""
        e = self.engine
        if e.paused or e._stopping:
            return
        for window in self.windows.close_due(e.clock()):
            task = asyncio.create_task(self._run(window), name=f"bundle-{window.recipient_id}-{window.channel}")
            e._tasks.add(task)
            task.add_done_callback(e._task_done)

    async def release_all(self) -> None:
        """At stop: let go of the members still waiting, due at once for the next daemon or start."""
        e = self.engine
        now = e.clock()
        for notification_id in self.windows.drain():
            try:
                await e.store.release_claim(notification_id, now, now, "stopped while waiting in a bundle", e.owner)
            except (LeaseLost, StorageError) as exc:  # taken over, or the restart's recovery releases it
                log.warning("notification %d: its claim was not released at stop: %s", notification_id, exc)

    async def _run(self, window: Window) -> None:
        e = self.engine
        pending = set(window.members)  # members whose outcome is not written (released on an unexpected error)
        self._sending.update(window.members)
        try:
            await self._bundle_steps(window, pending)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # as in ``_run``: hand the rows back to the timer rather than strand them
            delay = max(e.policy.backoff_max, STORAGE_RETRY_SECONDS)
            log.exception("bundle for recipient %d: unexpected error; its members tried again in %.0f s",
                          window.recipient_id, delay)
            for notification_id in sorted(pending):
                await e._release(notification_id, delay, e.redact(f"bundle stopped by {type(exc).__name__}: {exc}"))
        finally:
            self._sending.difference_update(window.members)

    async def _bundle_steps(self, window: Window, pending: set[int]) -> None:
        e = self.engine
        members: list[_Member] = []
        alone: list[Notification] = []
        for notification_id in window.members:
            n = await e.store.get_notification(notification_id)
            if n is None or n.status.is_final:  # cancelled while it waited: nothing to send, only the claim
                pending.discard(notification_id)
                now = e.clock()
                with contextlib.suppress(LeaseLost):  # taken over meanwhile: not ours to release
                    await e.store.release_claim(notification_id, now, now, "closed while waiting in a bundle",
                                                e.owner)
                continue
            recipient = await e.store.get_recipient(n.recipient_id)
            usage = await e._sms_usage(n, recipient, n.position)
            situation = e._situation(n, recipient, n.position, n.tries_on_channel, False, None, usage)
            decision = failover.before_attempt(situation)
            if (isinstance(decision, Send) and decision.channel is window.channel
                    and self.joins(n, decision, situation)):
                members.append(_Member(n, situation, decision))
            else:
                alone.append(n)  # held, expired, skipped...: its own walk writes that
        if len(members) < 2 or window.channel not in e.channels:
            alone += [m.n for m in members]  # a lone member goes as it is; a reload removed the channel
            members = []
        pending.difference_update(n.id for n in alone)  # each walk handles its own errors
        onward = await self._send_bundle(window.channel, members, pending) if members else []
        await asyncio.gather(*(e._run(n, join=False) for n in alone), *(e._run(n) for n in onward))

    async def _send_bundle(self, channel: Channel, members: list[_Member],
                           pending: set[int]) -> list[Notification]:
        """Start an attempt for each member, send one message, finish each attempt by its own plan;
        returns the members that go on to their next channel now."""
        e = self.engine
        members.sort(key=lambda m: (m.n.created_at, m.n.id), reverse=True)  # newest first
        started: list[tuple[_Member, int]] = []
        for m in members:
            try:
                attempt_id = await e.store.start_attempt(m.n.id, channel, e.clock(), m.send.tries, e.owner)
            except LeaseLost as exc:  # the daemon that took it over sends it
                log.warning("notification %d: %s; left out of the bundle", m.n.id, exc)
                pending.discard(m.n.id)
                continue
            started.append((m, attempt_id))
            e.events.publish("attempt.started", {"notification_id": m.n.id, "attempt_id": attempt_id,
                                                 "channel": str(channel)})
        if not started:
            return []
        size, lead = len(started), min(m.n.id for m, _ in started)
        fits = bundle.fits_for(channel, e.bundle.sms_max_segments)
        composed = bundle.compose([m.n.text for m, _ in started], fits)
        recipient, validity = started[0][0].send.recipient, [m.send.validity_period for m, _ in started]
        adapter = e.channels[channel]
        e.breakers[channel].begin()
        await adapter.wait_turn(recipient)
        sent_at = e.clock()
        message = OutgoingMessage(lead, recipient, composed.text, composed.subject or started[0][0].n.subject,
                                  validity_period=None if None in validity else max(v or 0 for v in validity))
        result = await e._send(adapter, message)
        breaker_saw(e.breakers[channel], channel, result, e.events)
        if channel is Channel.SMS and result.kind is failover.ResultKind.DELIVERED:
            await e._count_sms(recipient, composed.text, lead)
        log.info("bundle of %d (lead #%d) -> recipient %d: %s %s (%d text(s) shown, %d cut)", size, lead,
                 recipient.id, channel, result.kind, composed.shown, composed.cut)
        now, blocked, onward = e.clock(), False, []
        for index, (m, attempt_id) in enumerate(started):
            plan = failover.after_attempt(m.situation, result, now, sent_at, draw=e.rng.random)
            if size > 1:
                plan = bundle.noted(plan, size, lead, cut=index >= composed.shown)
            if plan.block_recipient and not blocked:
                blocked = True
                marked = await e.store.set_telegram_blocked(recipient.id, True)
                e.events.publish("recipient.blocked", marked.telegram_event())
            try:
                attempt, status = await e.store.finish_attempt(attempt_id, m.n.id, plan.channel, plan.record,
                                                               plan.update, plan.at, e.owner)
            except LeaseLost as exc:
                log.warning("notification %d: %s; this daemon's result is not recorded", m.n.id, exc)
                pending.discard(m.n.id)
                continue
            pending.discard(m.n.id)
            report(e.events, m.n, attempt.to_json(), plan, m.n.status, status)
            if plan.update.release and plan.update.next_attempt_at is not None:  # a retry
                e._arm_if_earlier(plan.update.next_attempt_at)
            if not status.is_final and plan.goes_on:
                fresh = await e.store.get_notification(m.n.id)
                if fresh is not None:
                    onward.append(fresh)
        return onward
