"""The store contract for priority and quiet hours, on SQLite and a real PostgreSQL (the fixtures are
``tests.test_store_contract``'s): claim order, the held status, a recipient's zone and window."""

from __future__ import annotations

import pytest

from daemon.core.errors import Conflict
from daemon.core.models import AttemptRecord, Channel, NewNotification, NotificationUpdate, Outcome, Priority, Status
from daemon.core.store import Store
from tests.test_store_contract import LEASE, A, at, open_store, queue, store  # noqa: F401  (fixtures)


async def test_a_backlog_is_claimed_higher_priority_first_then_earliest(store: Store) -> None:  # noqa: F811
    low = (await queue(store, due=0, priority=Priority.LOW))[0]
    normal_later = (await queue(store, due=2, priority=Priority.NORMAL))[0]
    normal = (await queue(store, due=1, priority=Priority.NORMAL))[0]
    critical = (await queue(store, due=3, priority=Priority.CRITICAL))[0]
    order = []
    for _ in range(4):
        claimed = await store.claim_due(at(10), 1, A, at(10 + LEASE))
        order.append((claimed[0].id, claimed[0].priority))
    assert order == [(critical.id, Priority.CRITICAL), (normal.id, Priority.NORMAL),
                     (normal_later.id, Priority.NORMAL), (low.id, Priority.LOW)]


async def test_a_held_notification_waits_for_its_window_and_can_be_cancelled(store: Store) -> None:  # noqa: F811
    first, second = await queue(store, 2)
    for n in (first, second):
        await store.claim_due(at(0), 2, A, at(LEASE))
        hold = NotificationUpdate(Status.HELD, 0, 0, at(3600))
        _, status = await store.finish_attempt(None, n.id, Channel.EMAIL, AttemptRecord(Outcome.SKIPPED, "quiet hours"),
                                               hold, at(0), A)
        assert status is Status.HELD
    assert await store.next_due_time() == at(3600)
    assert await store.claim_due(at(3599), 10, A, at(3599 + LEASE)) == []
    assert (await store.cancel(second.id, at(10))).status is Status.CANCELLED
    released = await store.claim_due(at(3600), 10, A, at(3600 + LEASE))
    assert [(n.id, n.status) for n in released] == [(first.id, Status.HELD)]
    assert (await store.counts_by_status()) == {"held": 1, "cancelled": 1}


async def test_a_recipients_time_zone_and_quiet_hours_are_kept(store: Store) -> None:  # noqa: F811
    ann = await store.add_recipient("Ann", None, None, None)
    assert (ann.timezone, ann.quiet_hours) == ("UTC", None)
    ann = await store.update_recipient(ann.id, {"timezone": "Europe/Moscow", "quiet_hours": "22:00-07:00"})
    assert (ann.timezone, ann.quiet_hours) == ("Europe/Moscow", "22:00-07:00")
    assert (await store.list_recipients())[0].quiet_hours == "22:00-07:00"
    ann = await store.update_recipient(ann.id, {"quiet_hours": None})
    assert ann.quiet_hours is None and ann.timezone == "Europe/Moscow"


async def test_a_repeat_with_the_same_key_but_another_priority_is_a_conflict(store: Store) -> None:  # noqa: F811
    ann = await store.add_recipient("Ann", None, None, None)
    new = NewNotification(ann.id, "disk full", (Channel.EMAIL,), idempotency_key="k1", priority=Priority.HIGH)
    made, created = await store.create_notification(new, at(0))
    assert created and made.priority is Priority.HIGH
    again, created = await store.create_notification(new, at(1))
    assert not created and again.id == made.id
    with pytest.raises(Conflict, match="priority"):
        await store.create_notification(
            NewNotification(ann.id, "disk full", (Channel.EMAIL,), idempotency_key="k1"), at(2))
