"""The engine on its own: scripted adapters, a fake clock, a real SQLite store on tmp_path.

Time moves only when a test advances the clock; ``run_due()`` then runs whatever came due, as
the dispatcher does on a wake-up. No sleeps: backoff, ack waits, deadlines and breaker
cool-downs are all stepped through.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon.core.breaker import BreakerSettings, BreakerState
from daemon.core.channel import ChannelAdapter, OutgoingMessage
from daemon.core.engine import Engine
from daemon.core.errors import PermanentError, TransientError
from daemon.core.events import EventBus
from daemon.core.failover import RetryPolicy
from daemon.core.models import Channel, NewNotification, Notification, Recipient, Status
from daemon.core.redact import Redactor
from daemon.storage import SqliteStore
from tests.conftest import FakeClock

TELEGRAM, EMAIL, SMS = Channel.TELEGRAM, Channel.EMAIL, Channel.SMS
START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)  # far from the real time on purpose: timers must not care


class ScriptedAdapter:
    """A channel adapter answering from a script: a provider message id, or an error to raise.
    Once the script runs out it delivers."""

    def __init__(self, name: Channel, *answers: str | Exception) -> None:
        self.name = name
        self.answers = list(answers)
        self.sent: list[OutgoingMessage] = []

    async def wait_turn(self, recipient: Recipient) -> None:
        return None

    async def send(self, message: OutgoingMessage) -> str | None:
        self.sent.append(message)
        answer = self.answers.pop(0) if self.answers else f"{self.name}-{len(self.sent)}"
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def check(self) -> str:
        return "scripted"

    async def close(self) -> None:
        return None


class Harness:
    def __init__(self, store: SqliteStore, clock: FakeClock) -> None:
        self.store = store
        self.clock = clock
        self.events = EventBus(clock=clock.now)
        self.telegram = ScriptedAdapter(TELEGRAM)
        self.email = ScriptedAdapter(EMAIL)
        adapters: dict[Channel, ChannelAdapter] = {TELEGRAM: self.telegram, EMAIL: self.email}
        self.engine = Engine(store, adapters, RetryPolicy(attempts_per_channel=2, backoff_initial=2.0, jitter=0.0),
                             self.events, Redactor(), clock=clock.now, monotonic=clock.monotonic,
                             rng=random.Random(1), breaker=BreakerSettings(threshold=2, cooldown=30.0))
        self.recipient = 0

    async def send(self, **fields: Any) -> int:
        new = NewNotification(self.recipient, fields.pop("text", "disk full"), (TELEGRAM, EMAIL), **fields)
        notification, _ = await self.store.create_notification(new, self.clock.now())
        return notification.id

    async def show(self, notification_id: int) -> Notification:
        notification = await self.store.get_notification(notification_id)
        assert notification is not None
        return notification

    async def log(self, notification_id: int) -> list[tuple[str, str, str | None]]:
        return [(a.channel, str(a.outcome), a.error) for a in (await self.show(notification_id)).attempts]

    async def advance_and_run(self, seconds: float) -> int:
        self.clock.advance(seconds)
        return await self.engine.run_due()


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    store = SqliteStore(tmp_path / "fnotify.db")
    await store.open()
    harness = Harness(store, FakeClock(START))
    harness.recipient = (await store.add_recipient("Ann", "ann@example.com", None, 1001)).id
    yield harness
    await harness.engine.stop(0)
    await store.close()


async def test_a_transient_failure_is_retried_at_the_backoff(h: Harness) -> None:
    h.telegram.answers = [TransientError("Telegram server error")]
    sent = await h.send()
    assert await h.engine.run_due() == 1
    retrying = await h.show(sent)
    assert retrying.status is Status.SENDING and retrying.next_attempt_at == START + timedelta(seconds=2)
    assert await h.store.next_due_time() == START + timedelta(seconds=2)  # where the timer is armed
    assert await h.advance_and_run(1.9) == 0  # not due yet
    assert await h.advance_and_run(0.1) == 1
    assert await h.log(sent) == [("telegram", "retry", "Telegram server error"), ("telegram", "delivered", None)]
    assert (await h.show(sent)).status is Status.DELIVERED
    assert len(h.telegram.sent) == 2 and not h.email.sent


async def test_a_walk_reads_a_pending_sms_receipt_only_where_one_can_be(tmp_path: Path) -> None:
    # one read per notification (a thread hop) that only a row waiting at its SMS step can need
    class CountingStore(SqliteStore):
        receipt_reads = 0

        async def pending_receipt(self, notification_id: int) -> Any:
            CountingStore.receipt_reads += 1
            return await super().pending_receipt(notification_id)

    store = CountingStore(tmp_path / "fnotify.db")
    await store.open()
    try:
        h = Harness(store, FakeClock(START))
        h.recipient = (await store.add_recipient("Ann", "ann@example.com", "+14155550100", 1001)).id
        sent = await store.create_notification(NewNotification(h.recipient, "hi", (TELEGRAM, EMAIL, SMS)), START)
        await h.engine.run_due()
        assert await h.log(sent[0].id) == [("telegram", "delivered", None)]
        assert CountingStore.receipt_reads == 0
    finally:
        await h.engine.stop(0)
        await store.close()


async def test_a_claimed_batch_reads_its_recipients_once(tmp_path: Path) -> None:
    # a read per walk was a thread hop per notification; the claim reads the batch's recipients at once
    class CountingStore(SqliteStore):
        single_reads = 0

        async def get_recipient(self, recipient_id: int) -> Any:
            CountingStore.single_reads += 1
            return await super().get_recipient(recipient_id)

    store = CountingStore(tmp_path / "fnotify.db")
    await store.open()
    try:
        h = Harness(store, FakeClock(START))
        ann = (await store.add_recipient("Ann", "ann@example.com", None, 1001)).id
        bob = (await store.add_recipient("Bob", "bob@example.com", None, None)).id  # no chat: email delivers
        ids = [(await store.create_notification(NewNotification(who, f"m{i}", (TELEGRAM, EMAIL)), START))[0].id
               for i, who in enumerate([ann, bob, ann, bob])]
        CountingStore.single_reads = 0
        assert await h.engine.run_due() == 4
        assert CountingStore.single_reads == 0
        logs = [await h.log(i) for i in ids]
        assert logs == [[("telegram", "delivered", None)], [("telegram", "skipped", "no Telegram chat linked"),
                            ("email", "delivered", None)]] * 2
    finally:
        await h.engine.stop(0)
        await store.close()


async def test_a_skipped_channel_is_written_with_the_next_attempts_start_in_one_write(tmp_path: Path) -> None:
    # each write is a trip through the group-commit writer (a future, a thread hop, a savepoint); a skip
    # (no Telegram chat) and the email attempt's start share one, and the ledger and events read as before
    class CountingStore(SqliteStore):
        writes = 0

        async def _submit(self, op: Any) -> Any:
            CountingStore.writes += 1
            return await super()._submit(op)

    store = CountingStore(tmp_path / "fnotify.db")
    await store.open()
    try:
        h = Harness(store, FakeClock(START))
        events: list[tuple[str, str | None]] = []
        h.events.tap(lambda kind, data: events.append((kind, data.get("outcome") or data.get("status"))))
        bob = (await store.add_recipient("Bob", "bob@example.com", None, None)).id  # no chat: telegram skipped
        sent = (await store.create_notification(NewNotification(bob, "m", (TELEGRAM, EMAIL)), START))[0].id
        CountingStore.writes = 0
        assert await h.engine.run_due() == 1
        assert CountingStore.writes == 3  # the claim; the skip with the start; the delivery
        assert await h.log(sent) == [("telegram", "skipped", "no Telegram chat linked"), ("email", "delivered", None)]
        assert events == [("attempt.finished", "skipped"), ("notification.status", "sending"),
                          ("attempt.started", None), ("attempt.finished", "delivered"),
                          ("notification.status", "delivered")]
    finally:
        await h.engine.stop(0)
        await store.close()


async def test_a_permanent_failure_fails_over_to_the_next_channel_at_once(h: Harness) -> None:
    h.telegram.answers = [PermanentError("chat not found")]
    sent = await h.send()
    await h.engine.run_due()
    assert await h.log(sent) == [("telegram", "failed", "chat not found"), ("email", "delivered", None)]
    assert (await h.show(sent)).status is Status.DELIVERED


async def test_a_blocked_bot_marks_the_recipient_and_later_notifications_skip_telegram(h: Harness) -> None:
    h.telegram.answers = [PermanentError("Forbidden: bot was blocked by the user", blocked=True)]
    with h.events.subscribe() as events:
        first = await h.send()
        await h.engine.run_due()
        kinds = [event["event"] for event in _drain(events)]
    assert "recipient.blocked" in kinds
    assert (await h.store.get_recipient(h.recipient)).telegram_blocked  # type: ignore[union-attr]
    second = await h.send()
    await h.engine.run_due()
    assert await h.log(first) == [("telegram", "failed", "Forbidden: bot was blocked by the user"),
                                  ("email", "delivered", None)]
    assert await h.log(second) == [("telegram", "skipped", "bot blocked by the user"), ("email", "delivered", None)]
    assert len(h.telegram.sent) == 1


async def test_an_open_breaker_skips_the_channel_as_down_and_closes_after_the_cooldown(h: Harness) -> None:
    h.telegram.answers = [TransientError("502"), TransientError("502")]
    tripped = await h.send()
    await h.engine.run_due()
    await h.advance_and_run(2.0)  # the retry: the second transient failure in a row opens the breaker
    assert await h.log(tripped) == [("telegram", "retry", "502"),
                                    ("telegram", "failed", "502; giving up on this channel after 2 tries"),
                                    ("email", "delivered", None)]
    assert h.engine.breakers[TELEGRAM].state is BreakerState.OPEN

    down = await h.send()
    await h.engine.run_due()
    assert await h.log(down) == [("telegram", "skipped", "channel down"), ("email", "delivered", None)]
    assert len(h.telegram.sent) == 2  # Telegram was not called

    h.clock.advance(30.0)  # the cooldown: the next attempt is the probe, and it succeeds
    probe = await h.send()
    await h.engine.run_due()
    assert await h.log(probe) == [("telegram", "delivered", None)]
    assert h.engine.breakers[TELEGRAM].state is BreakerState.CLOSED


async def test_an_unacknowledged_delivery_escalates_to_the_next_channel_at_the_ack_timeout(h: Harness) -> None:
    sent = await h.send(ack_timeout=60.0)
    await h.engine.run_due()
    waiting = await h.show(sent)
    assert waiting.status is Status.SENDING and waiting.next_attempt_at == START + timedelta(seconds=60)
    assert h.telegram.sent[0].ack_requested
    assert await h.advance_and_run(59.0) == 0
    assert await h.advance_and_run(1.0) == 1
    assert await h.log(sent) == [("telegram", "delivered", None),
                                 ("telegram", "unacknowledged", "not acknowledged within 60 s"),
                                 ("email", "delivered", None)]
    assert (await h.show(sent)).status is Status.DELIVERED


async def test_a_retry_past_the_deadline_comes_due_at_the_deadline_and_expires(h: Harness) -> None:
    h.telegram.answers = [TransientError("429", retry_after=30.0)]
    sent = await h.send(deadline=START + timedelta(seconds=5))
    await h.engine.run_due()
    assert (await h.show(sent)).next_attempt_at == START + timedelta(seconds=5)
    assert await h.advance_and_run(5.0) == 1
    final = await h.show(sent)
    assert final.status is Status.EXPIRED
    assert [(a.channel, str(a.outcome)) for a in final.attempts] == [("telegram", "retry"), ("telegram", "skipped")]
    assert final.attempts[1].error == "deadline 2026-01-01T12:00:05.000+00:00 passed: not tried"
    assert len(h.telegram.sent) == 1 and not h.email.sent


async def test_a_started_engine_on_a_fake_clock_neither_spins_nor_misses_a_retry(h: Harness) -> None:
    """The dispatcher's timer runs on real time; a fake clock far from it must not make the timer
    fire at once over and over (a busy loop), and advancing the clock plus a poke runs the retry."""
    claims = 0
    claim_due = h.store.claim_due

    async def counting_claim_due(now: datetime, limit: int, owner: str, lease_until: datetime) -> list[Notification]:
        nonlocal claims
        claims += 1
        return await claim_due(now, limit, owner, lease_until)

    h.store.claim_due = counting_claim_due  # type: ignore[method-assign]
    h.telegram.answers = [TransientError("503")]
    await h.engine.start()
    with h.events.subscribe() as events:
        sent = await h.send()
        h.engine.poke()
        await _wait_for(events, "attempt.finished")
        settled = claims
        await asyncio.sleep(0.2)  # a window to catch a busy loop in, not a wait for a timer
        assert claims <= settled + 1, f"the timer fired {claims - settled} times with nothing due"
        h.clock.advance(2.0)
        h.engine.poke()
        await _wait_for(events, "notification.status", status="delivered")
    assert await h.log(sent) == [("telegram", "retry", "503"), ("telegram", "delivered", None)]


def _drain(subscription: Any) -> list[dict[str, Any]]:
    events = []
    while not subscription.queue.empty():
        events.append(subscription.queue.get_nowait())
    return events


async def _wait_for(subscription: Any, kind: str, **data: Any) -> dict[str, Any]:
    async with asyncio.timeout(5):
        while True:
            event = await subscription.get()
            assert event is not None, "the event stream ended"
            if event["event"] == kind and all(event["data"].get(k) == v for k, v in data.items()):
                return dict(event)


async def test_at_the_in_flight_cap_the_engine_claims_again_in_batches_not_after_each_walk(h: Harness) -> None:
    # behind a slow provider every walk waits at the cap; a claim after each one that ends (a write and two
    # reads for one row) cost more than the walk's own writes: refill once an eighth of the cap is free
    claims: list[int] = []
    claim_due = h.store.claim_due

    async def counting_claim_due(now: datetime, limit: int, owner: str, lease_until: datetime) -> list[Notification]:
        batch = await claim_due(now, limit, owner, lease_until)
        claims.append(len(batch))
        return batch

    gate = asyncio.Semaphore(0)
    waiting = 0

    async def held_send(message: OutgoingMessage) -> str:
        nonlocal waiting
        waiting += 1
        await gate.acquire()  # one release lets one send through
        waiting -= 1
        return "sent"

    async def until(condition: Any) -> None:
        async with asyncio.timeout(5):
            while not condition():
                await asyncio.sleep(0.001)

    h.store.claim_due = counting_claim_due  # type: ignore[method-assign]
    h.telegram.send = held_send  # type: ignore[method-assign]
    h.engine.max_in_flight = 16  # claims again when 2 are free
    ids = [await h.send() for _ in range(24)]
    await h.engine.start()
    await until(lambda: waiting == 16)
    gate.release()  # one walk ends: one free place, no claim yet
    await until(lambda: waiting == 15 and h.engine.in_flight == 15)
    gate.release()  # a second: claim two
    await until(lambda: waiting == 16)
    assert claims == [16, 2]
    for _ in range(22):
        gate.release()
    async with asyncio.timeout(5):
        while (await h.store.counts_by_status()).get("delivered") != 24:
            await asyncio.sleep(0.001)
    assert [(await h.show(i)).status for i in ids] == [Status.DELIVERED] * 24
    assert sum(claims) == 24
