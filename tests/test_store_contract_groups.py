"""The store contract for recipient groups and batch sends, on SQLite and a real PostgreSQL (the fixtures
are ``tests.test_store_contract``'s): group CRUD and its refusals, a batch all-or-none, a batch's
idempotency key, including a race of two stores (two daemons) sending with the same key."""

from __future__ import annotations

import asyncio

import pytest

from daemon.core.errors import Conflict, NotFound, ValidationError
from daemon.core.groups import NewBatch
from daemon.core.models import Channel, NewNotification, Priority, Status
from daemon.core.store import Store
from tests.test_store_contract import LEASE, A, Opener, at, open_store, store  # noqa: F401  (fixtures)

CHAIN = (Channel.EMAIL, Channel.SMS)


async def people(store: Store, count: int) -> list[int]:  # noqa: F811
    return [(await store.add_recipient(f"P{i}", f"p{i}@example.com", None, None)).id for i in range(count)]


def batch(group: str = "oncall", key: str | None = None, **fields: object) -> NewBatch:
    return NewBatch(group, fields.pop("text", "disk full"), CHAIN, idempotency_key=key, **fields)  # type: ignore[arg-type]


async def test_a_group_is_added_listed_changed_and_removed(store: Store) -> None:  # noqa: F811
    a, b, c = await people(store, 3)
    made = await store.add_group("oncall", [c, a, a], at(0))
    assert (made.name, made.members, made.created_at) == ("oncall", (a, c), at(0))
    await store.add_group("empty", [], at(1))
    assert [(g.name, g.members) for g in await store.list_groups()] == [("empty", ()), ("oncall", (a, c))]
    changed = await store.update_group("oncall", add=[b], remove=[a])
    assert changed.members == (b, c)
    renamed = await store.update_group("oncall", rename="ops", members=[a])
    assert (renamed.name, renamed.members) == ("ops", (a,))
    assert await store.get_group("oncall") is None
    await store.remove_group("ops")
    assert [g.name for g in await store.list_groups()] == ["empty"]


async def test_group_refusals_name_what_is_wrong_and_change_nothing(store: Store) -> None:  # noqa: F811
    (a,) = await people(store, 1)
    await store.add_group("oncall", [a], at(0))
    with pytest.raises(Conflict, match="group 'oncall' already exists"):
        await store.add_group("oncall", [], at(1))
    with pytest.raises(ValidationError) as unknown:
        await store.add_group("ops", [a, 99], at(1))
    assert (unknown.value.field, unknown.value.reason) == ("members", "recipient 99 does not exist")
    with pytest.raises(ValidationError) as unknown_added:
        await store.update_group("oncall", add=[98], remove=[a])
    assert unknown_added.value.field == "add"
    await store.add_group("ops", [], at(2))
    with pytest.raises(Conflict, match="group 'ops' already exists"):
        await store.update_group("oncall", rename="ops", members=[])
    for missing in (store.update_group("nope", add=[a]), store.remove_group("nope")):
        with pytest.raises(NotFound, match="group 'nope' does not exist"):
            await missing
    assert [(g.name, g.members) for g in await store.list_groups()] == [("oncall", (a,)), ("ops", ())]


async def test_removing_a_recipient_takes_it_out_of_its_groups(store: Store) -> None:  # noqa: F811
    a, b = await people(store, 2)
    await store.add_group("oncall", [a, b], at(0))
    await store.remove_recipient(a)
    assert (await store.get_group("oncall")).members == (b,)  # type: ignore[union-attr]


async def test_a_batch_is_one_queued_notification_per_member_linked_by_its_id(store: Store) -> None:  # noqa: F811
    a, b, c = await people(store, 3)
    await store.add_group("oncall", [a, b, c], at(0))
    made, created = await store.create_batch(batch(priority=Priority.HIGH, ack_timeout=60.0), at(5))
    assert created and made.group == "oncall" and made.created_at == at(5)
    assert [(m.notification.recipient_id, m.recipient_name, m.notification.status) for m in made.members] == [
        (a, "P0", Status.QUEUED), (b, "P1", Status.QUEUED), (c, "P2", Status.QUEUED)]
    for member in made.members:
        stored = await store.get_notification(member.notification.id)
        assert stored is not None and stored.batch_id == made.id and stored.idempotency_key is None
        assert (stored.text, stored.chain, stored.priority, stored.ack_timeout) == (
            "disk full", CHAIN, Priority.HIGH, 60.0)
    claimed = await store.claim_due(at(5), 10, A, at(5 + LEASE))  # the engine takes them as any others
    assert sorted(n.id for n in claimed) == sorted(m.notification.id for m in made.members)
    assert (await store.get_batch(made.id)).to_json()["counts"] == {"queued": 3}  # type: ignore[union-attr]
    assert await store.get_batch(made.id + 100) is None


async def test_a_send_to_an_unknown_or_empty_group_creates_nothing(store: Store) -> None:  # noqa: F811
    await store.add_group("empty", [], at(0))
    with pytest.raises(NotFound, match="group 'nope' does not exist"):
        await store.create_batch(batch("nope"), at(1))
    with pytest.raises(ValidationError) as empty:
        await store.create_batch(batch("empty", key="k"), at(1))
    assert (empty.value.field, empty.value.reason) == ("group", "group 'empty' has no members")
    assert await store.list_notifications() == []


async def test_a_batch_key_returns_the_same_batch_and_refuses_another_request(store: Store) -> None:  # noqa: F811
    a, b = await people(store, 2)
    await store.add_group("oncall", [a, b], at(0))
    await store.add_group("ops", [a], at(0))
    first, created = await store.create_batch(batch(key="incident-7", expires_in=600.0), at(1))
    again, again_created = await store.create_batch(batch(key="incident-7", expires_in=600.0), at(9))
    assert created and not again_created and again.id == first.id and again.idempotency_key == "incident-7"
    with pytest.raises(Conflict, match=r"batch \d+ with another message"):
        await store.create_batch(batch(key="incident-7", text="other", expires_in=600.0), at(10))
    with pytest.raises(Conflict, match="with another group"):
        await store.create_batch(batch("ops", key="incident-7", expires_in=600.0), at(10))
    assert len(await store.list_notifications()) == 2


async def test_a_key_is_a_batchs_or_a_single_sends_never_both(store: Store) -> None:  # noqa: F811
    (a,) = await people(store, 1)
    await store.add_group("oncall", [a], at(0))
    await store.create_batch(batch(key="batch-key"), at(1))
    await store.create_notification(NewNotification(a, "x", CHAIN, idempotency_key="single-key"), at(1))
    with pytest.raises(Conflict, match="a send to a group"):
        await store.create_notification(NewNotification(a, "x", CHAIN, idempotency_key="batch-key"), at(2))
    with pytest.raises(Conflict, match="a send to one recipient"):
        await store.create_batch(batch(key="single-key"), at(2))
    assert len(await store.list_notifications()) == 2


async def test_two_daemons_racing_with_one_key_make_one_batch(open_store: Opener) -> None:  # noqa: F811
    first, second = await open_store(), await open_store()
    ids = await people(first, 3)
    await first.add_group("oncall", ids, at(0))
    for round_ in range(5):  # several rounds: the window of a race is narrow
        key = f"race-{round_}"
        results = await asyncio.gather(*(s.create_batch(batch(key=key), at(1)) for s in (first, second, first)))
        assert len({made.id for made, _ in results}) == 1
        assert sorted(created for _, created in results) == [False, False, True]
    assert len(await first.list_notifications(limit=100)) == 5 * 3


async def test_pruning_forgets_a_batch_once_its_notifications_are_gone(store: Store) -> None:  # noqa: F811
    (a,) = await people(store, 1)
    await store.add_group("oncall", [a], at(0))
    made, _ = await store.create_batch(batch(key="old"), at(0))
    await store.cancel(made.members[0].notification.id, at(1))
    assert await store.prune(at(10)) == 1
    assert await store.get_batch(made.id) is None
    again, created = await store.create_batch(batch(key="old", text="new"), at(11))  # the key is free again
    assert created and [m.notification.text for m in again.members] == ["new"]
