"""The store contract for a skipped step written with the next attempt's start (``skip_then_start``), on
SQLite and a real PostgreSQL (the fixtures are ``tests.test_store_contract``'s): the same rows as
``finish_attempt(None, ...)`` then ``start_attempt``, one transaction, the same fence."""

from __future__ import annotations

import pytest

from daemon.core.errors import LeaseLost
from daemon.core.models import AttemptRecord, Channel, NotificationUpdate, Outcome, Skip, Status
from daemon.core.store import Store
from tests.test_store_contract import (  # noqa: F401  (fixtures)
    LEASE,
    A,
    B,
    Opener,
    at,
    delivered,
    open_store,
    queue,
    store,
)

SKIP = Skip(Channel.EMAIL, AttemptRecord(Outcome.SKIPPED, "no email address"),
            NotificationUpdate(Status.SENDING, 1, 0, at(1), release=False), at(1))


async def test_a_skip_and_the_next_start_are_recorded_as_two_attempts(store: Store) -> None:  # noqa: F811
    [n] = await queue(store)
    await store.claim_due(at(0), 10, A, at(LEASE))
    skipped, status, attempt_id = await store.skip_then_start(SKIP, n.id, Channel.SMS, at(2), 1, A)
    assert status is Status.SENDING and attempt_id is not None
    assert (skipped.channel, skipped.outcome, skipped.error) == (Channel.EMAIL, Outcome.SKIPPED, "no email address")
    assert skipped.started_at == skipped.finished_at == at(1)
    shown = await store.get_notification(n.id)
    assert shown is not None and (shown.status, shown.position, shown.tries_on_channel) == (Status.SENDING, 1, 1)
    assert [(a.id, a.channel, a.outcome, a.started_at) for a in shown.attempts] == [
        (skipped.id, Channel.EMAIL, Outcome.SKIPPED, at(1)), (attempt_id, Channel.SMS, None, at(2))]
    assert await store.claim_due(at(5), 10, B, at(40)) == []  # the claim is kept: the walk goes on
    attempt, status = await store.finish_attempt(attempt_id, n.id, Channel.SMS, *delivered(1), now=at(3), owner=A)
    assert status is Status.DELIVERED and attempt.started_at == at(2)


async def test_an_attempt_open_at_a_crash_after_a_skip_is_recorded_interrupted(open_store: Opener) -> None:  # noqa: F811
    dead, alive = await open_store(), await open_store()
    [n] = await queue(dead)
    await dead.claim_due(at(0), 10, A, at(LEASE))
    _, _, attempt_id = await dead.skip_then_start(SKIP, n.id, Channel.SMS, at(2), 1, A)
    # the daemon "dies" sending: its lease runs out and another daemon takes the row over
    [taken] = await alive.claim_due(at(LEASE + 1), 10, B, at(LEASE + 40))
    assert taken.id == n.id and taken.position == 1
    shown = await alive.get_notification(n.id)
    assert shown is not None
    assert [(a.id, a.outcome) for a in shown.attempts][1] == (attempt_id, Outcome.INTERRUPTED)


async def test_a_cancelled_notification_starts_nothing(store: Store) -> None:  # noqa: F811
    [n] = await queue(store)
    await store.claim_due(at(0), 10, A, at(LEASE))
    await store.cancel(n.id, at(0.5))
    skipped, status, attempt_id = await store.skip_then_start(SKIP, n.id, Channel.SMS, at(2), 1, A)
    assert status is Status.CANCELLED and attempt_id is None and skipped.outcome is Outcome.SKIPPED
    shown = await store.get_notification(n.id)
    assert shown is not None and [a.outcome for a in shown.attempts] == [Outcome.SKIPPED]
    assert await store.renew_leases(A, [n.id], at(100)) == set()  # released


async def test_only_the_holder_of_the_claim_writes_a_skip_and_a_start(open_store: Opener) -> None:  # noqa: F811
    holder, other = await open_store(), await open_store()
    [n] = await queue(holder)
    await holder.claim_due(at(0), 10, A, at(LEASE))
    with pytest.raises(LeaseLost):
        await other.skip_then_start(SKIP, n.id, Channel.SMS, at(2), 1, B)
    shown = await holder.get_notification(n.id)
    assert shown is not None and shown.attempts == () and shown.position == 0
