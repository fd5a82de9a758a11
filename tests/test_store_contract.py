"""One contract for every store: each test runs against SQLite and against a real PostgreSQL (huey's
StorageTests idea). Several stores opened on one database stand for several daemons; time is injected
(``at(seconds)``), so leases expire without sleeping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.core.errors import Conflict, LeaseLost, NotFound, StorageError
from daemon.core.models import (
    AttemptRecord,
    Channel,
    NewNotification,
    Notification,
    NotificationUpdate,
    Outcome,
    Priority,
    Status,
)
from daemon.core.store import AckOutcome, LinkOutcome, Store
from daemon.database_url import parse_postgres_url
from daemon.storage.postgres import PostgresStore
from daemon.storage.sqlite import SqliteStore
from tests.pg import create_database, drop_database

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
A, B, C = "host-a:101:aaaa", "host-b:202:bbbb", "host-c:303:cccc"
LEASE = 30

Opener = Callable[[], Awaitable[Store]]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture(params=["sqlite", "postgres"])
async def open_store(request: pytest.FixtureRequest, short_tmp: Path) -> AsyncIterator[Opener]:
    """Opens another store on the test's one database: another daemon, as far as the contract goes."""
    opened: list[Store] = []
    admin = url = ""
    if request.param == "postgres":
        admin = request.getfixturevalue("postgres_server")
        url = await create_database(admin)

    async def opener() -> Store:
        store: Store = PostgresStore(parse_postgres_url(url)) if url else SqliteStore(short_tmp / "fnotify.db")
        await store.open()
        opened.append(store)
        return store

    yield opener
    for store in opened:
        await store.close()
    if url:
        await drop_database(admin, url)


@pytest.fixture
async def store(open_store: Opener) -> Store:
    return await open_store()


async def queue(store: Store, count: int = 1, *, due: float = 0, **fields: object) -> list[Notification]:
    """``count`` notifications for a new recipient, due at ``at(due)``."""
    recipient = await store.add_recipient("Ann", "ann@example.com", None, None)
    made = []
    for i in range(count):
        new = NewNotification(recipient.id, f"message {i}", (Channel.EMAIL, Channel.SMS), **fields)  # type: ignore[arg-type]
        made.append((await store.create_notification(new, at(due)))[0])
    return made


def delivered(position: int = 0, tries: int = 1) -> tuple[AttemptRecord, NotificationUpdate]:
    return AttemptRecord(Outcome.DELIVERED), NotificationUpdate(Status.DELIVERED, position, tries, None)


# -- claims ------------------------------------------------------------------------------------------

async def test_two_owners_claiming_at_once_never_get_the_same_row(open_store: Opener) -> None:
    first, second = await open_store(), await open_store()
    ids = {n.id for n in await queue(first, 120)}
    claims: dict[str, list[int]] = {A: [], B: []}

    async def drain(store: Store, owner: str) -> None:
        for _ in range(60):  # bounded: 120 rows, batches of 7, two owners
            batch = await store.claim_due(at(1), 7, owner, at(1 + LEASE))
            if not batch:
                return
            claims[owner] += [n.id for n in batch]

    await asyncio.gather(drain(first, A), drain(second, B))
    assert not set(claims[A]) & set(claims[B])
    assert sorted(claims[A] + claims[B]) == sorted(ids)  # every row once, none twice


async def test_a_claim_takes_due_rows_earliest_first_and_leaves_future_ones(store: Store) -> None:
    later = await queue(store, 1, due=100)
    now = await queue(store, 2, due=0)
    claimed = await store.claim_due(at(10), 10, A, at(500))
    assert {n.id for n in claimed} == {n.id for n in now}
    assert await store.next_due_time() == at(100)  # claimed rows are not due; the future one is
    assert [n.id for n in await store.claim_due(at(100), 10, B, at(130))] == [later[0].id]
    assert await store.next_due_time() is None


# -- leases ------------------------------------------------------------------------------------------

async def test_an_expired_lease_is_taken_over_with_the_old_attempt_recorded_interrupted(open_store: Opener) -> None:
    dead, alive = await open_store(), await open_store()
    [n] = await queue(dead)
    [claimed] = await dead.claim_due(at(0), 10, A, at(LEASE))
    attempt_id = await dead.start_attempt(n.id, Channel.EMAIL, at(1), 1, A)

    [taken] = await alive.claim_due(at(LEASE + 1), 10, B, at(2 * LEASE))
    assert taken.id == n.id and taken.status is Status.SENDING and taken.tries_on_channel == 1  # as after a crash
    shown = await alive.get_notification(n.id)
    assert shown is not None
    [attempt] = shown.attempts
    assert attempt.id == attempt_id and attempt.outcome is Outcome.INTERRUPTED
    assert attempt.error is not None and A in attempt.error and attempt.finished_at == at(LEASE + 1)
    # the new owner goes on as usual
    retry = await alive.start_attempt(n.id, Channel.EMAIL, at(LEASE + 2), 2, B)
    _, status = await alive.finish_attempt(retry, n.id, Channel.EMAIL, *delivered(tries=2), now=at(LEASE + 3), owner=B)
    assert status is Status.DELIVERED and claimed.id == n.id


async def test_a_live_lease_is_never_taken(open_store: Opener) -> None:
    holder, other = await open_store(), await open_store()
    [n] = await queue(holder)
    await holder.claim_due(at(0), 10, A, at(LEASE))
    attempt_id = await holder.start_attempt(n.id, Channel.EMAIL, at(1), 1, A)

    assert await other.claim_due(at(LEASE - 1), 10, B, at(2 * LEASE)) == []
    assert await other.recover_interrupted(at(LEASE - 1), B) == 0  # a start elsewhere leaves it alone
    assert await other.renew_leases(B, [n.id], at(3 * LEASE)) == set()  # only the holder renews
    _, status = await holder.finish_attempt(attempt_id, n.id, Channel.EMAIL, *delivered(), now=at(2), owner=A)
    assert status is Status.DELIVERED


async def test_renewing_extends_the_lease(open_store: Opener) -> None:
    holder, other = await open_store(), await open_store()
    [n] = await queue(holder)
    await holder.claim_due(at(0), 10, A, at(LEASE))
    assert await holder.renew_leases(A, [n.id], at(LEASE + 20)) == {n.id}
    assert await other.claim_due(at(LEASE + 10), 10, B, at(100)) == []  # past the first lease, within the renewal
    assert [x.id for x in await other.claim_due(at(LEASE + 21), 10, B, at(100))] == [n.id]
    assert await holder.renew_leases(A, [n.id], at(200)) == set()  # taken over: the old owner renews nothing


async def test_an_owner_whose_lease_was_taken_over_can_write_nothing_more(open_store: Opener) -> None:
    dead, alive = await open_store(), await open_store()
    [n] = await queue(dead)
    await dead.claim_due(at(0), 10, A, at(LEASE))
    attempt_id = await dead.start_attempt(n.id, Channel.EMAIL, at(1), 1, A)
    await alive.claim_due(at(LEASE + 1), 10, B, at(2 * LEASE))

    with pytest.raises(LeaseLost):
        await dead.finish_attempt(attempt_id, n.id, Channel.EMAIL, *delivered(), now=at(LEASE + 2), owner=A)
    with pytest.raises(LeaseLost):
        await dead.start_attempt(n.id, Channel.SMS, at(LEASE + 2), 1, A)
    shown = await alive.get_notification(n.id)
    assert shown is not None and shown.status is Status.SENDING
    assert [a.outcome for a in shown.attempts] == [Outcome.INTERRUPTED]


async def test_recover_releases_only_its_own_rows_and_expired_leases(open_store: Opener) -> None:
    store = await open_store()
    own, expired, live = (n.id for n in await queue(store, 3))
    await store.claim_due(at(0), 1, A, at(LEASE))  # own
    await store.claim_due(at(0), 1, B, at(5))  # runs out at 5
    await store.claim_due(at(0), 1, C, at(LEASE))  # another live daemon's
    for notification_id in (own, expired, live):
        await store.start_attempt(notification_id, Channel.EMAIL, at(1), 1)

    assert await store.recover_interrupted(at(10), A) == 2
    errors = {}
    for notification_id in (own, expired, live):
        shown = await store.get_notification(notification_id)
        assert shown is not None
        errors[notification_id] = shown.attempts[0].error
    assert errors[own] == "the daemon stopped while this attempt was in flight"
    assert errors[expired] is not None and B in errors[expired]
    assert errors[live] is None  # still in flight, still C's
    assert {n.id for n in await store.claim_due(at(10), 10, A, at(40))} == {own, expired}


async def test_finishing_releases_the_claim_unless_the_walk_goes_on(store: Store) -> None:
    [n] = await queue(store)
    await store.claim_due(at(0), 10, A, at(LEASE))
    first = await store.start_attempt(n.id, Channel.EMAIL, at(1), 1, A)
    go_on = NotificationUpdate(Status.SENDING, 1, 0, at(2), release=False)  # failed over: same task, next channel
    await store.finish_attempt(first, n.id, Channel.EMAIL, AttemptRecord(Outcome.FAILED, "550"), go_on, at(2), A)
    assert await store.claim_due(at(5), 10, B, at(40)) == []  # still A's
    second = await store.start_attempt(n.id, Channel.SMS, at(3), 1, A)
    retry = NotificationUpdate(Status.SENDING, 1, 1, at(20))
    await store.finish_attempt(second, n.id, Channel.SMS, AttemptRecord(Outcome.RETRY, "503"), retry, at(4), A)
    assert await store.next_due_time() == at(20)
    assert [x.id for x in await store.claim_due(at(20), 10, B, at(50))] == [n.id]


async def test_releasing_a_failed_walk_interrupts_its_attempt_and_makes_it_due_again(open_store: Opener) -> None:
    holder, other = await open_store(), await open_store()
    [n] = await queue(holder)
    await holder.claim_due(at(0), 10, A, at(LEASE))
    await holder.start_attempt(n.id, Channel.EMAIL, at(1), 1, A)
    with pytest.raises(LeaseLost):  # only the holder may release it
        await other.release_claim(n.id, at(2), at(50), "not mine", B)
    await holder.release_claim(n.id, at(2), at(50), "walk stopped by RuntimeError: boom", A)
    shown = await other.get_notification(n.id)
    assert shown is not None and shown.next_attempt_at == at(50) and shown.status is Status.SENDING
    [attempt] = shown.attempts
    assert attempt.outcome is Outcome.INTERRUPTED and attempt.error == "walk stopped by RuntimeError: boom"
    assert await other.claim_due(at(49), 10, B, at(100)) == []
    assert [x.id for x in await other.claim_due(at(50), 10, B, at(100))] == [n.id]


async def test_a_notification_cancelled_in_flight_stays_cancelled_and_is_released(store: Store) -> None:
    [n] = await queue(store)
    await store.claim_due(at(0), 10, A, at(LEASE))
    attempt_id = await store.start_attempt(n.id, Channel.EMAIL, at(1), 1, A)
    assert (await store.cancel(n.id, at(2))).status is Status.CANCELLED
    attempt, status = await store.finish_attempt(attempt_id, n.id, Channel.EMAIL, *delivered(), now=at(3), owner=A)
    assert status is Status.CANCELLED and attempt.outcome is Outcome.DELIVERED and attempt.started_at == at(1)
    assert await store.renew_leases(A, [n.id], at(100)) == set()  # released
    with pytest.raises(Conflict):
        await store.cancel(n.id, at(4))


# -- idempotency, deadlines, redrive -------------------------------------------------------------------

async def test_two_sends_racing_with_one_idempotency_key_make_one_notification(open_store: Opener) -> None:
    stores = [await open_store(), await open_store()]
    recipient = await stores[0].add_recipient("Ann", None, None, None)
    new = NewNotification(recipient.id, "once", (Channel.EMAIL,), idempotency_key="deploy-42")
    results = await asyncio.gather(*(stores[i % 2].create_notification(new, at(0)) for i in range(10)))
    assert sum(created for _, created in results) == 1
    assert len({n.id for n, _ in results}) == 1
    assert await stores[1].counts_by_status() == {"queued": 1}


async def test_a_repeat_with_the_same_key_but_another_payload_is_a_conflict(store: Store) -> None:
    recipient = await store.add_recipient("Ann", None, None, None)
    first, _ = await store.create_notification(
        NewNotification(recipient.id, "disk full", (Channel.EMAIL,), idempotency_key="k", deadline=at(60),
                        expires_in=60), at(0))
    again, created = await store.create_notification(
        NewNotification(recipient.id, "disk full", (Channel.EMAIL,), idempotency_key="k", deadline=at(61),
                        expires_in=60), at(1))  # a retry a second later: the same expires_in
    assert again.id == first.id and not created
    with pytest.raises(Conflict, match=r"another message, chain"):
        await store.create_notification(
            NewNotification(recipient.id, "disk ok", (Channel.SMS,), idempotency_key="k", deadline=at(60),
                            expires_in=60), at(2))


async def test_recipients_are_read_by_the_batch(store: Store) -> None:
    ann = await store.add_recipient("Ann", "ann@example.com", None, 1001)
    bob = await store.add_recipient("Bob", None, "+14155550100", None)
    assert await store.get_recipients([]) == {}
    found = await store.get_recipients({ann.id, bob.id, 999})  # 999: absent, as get_recipient's None
    assert found == {ann.id: await store.get_recipient(ann.id), bob.id: await store.get_recipient(bob.id)}


async def test_a_send_to_a_missing_recipient_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.create_notification(NewNotification(999, "x", (Channel.EMAIL,)), at(0))


@pytest.mark.parametrize("fields", [
    {},
    {"subject": "Disk", "idempotency_key": "k-1", "priority": Priority.CRITICAL},
    {"deadline": T0 + timedelta(seconds=90, microseconds=123_457), "ack_timeout": 60},  # an int: a REAL column
    {"expires_in": 30.5, "deadline": at(30.5), "ack_timeout": 2.25},
])
async def test_a_new_notification_is_returned_exactly_as_it_reads_back(store: Store, fields: dict[str, object]) -> None:
    """The SQLite store builds a send's reply from what it inserted instead of reading the row: it must
    be the row, field for field (times through REAL seconds, an int ack_timeout as a float)."""
    recipient = await store.add_recipient("Ann", None, None, None)
    new = NewNotification(recipient.id, "line one\nline two \u00e9\U0001f600", (Channel.TELEGRAM, Channel.EMAIL),
                          **fields)  # type: ignore[arg-type]
    made, created = await store.create_notification(new, T0 + timedelta(microseconds=654_321))
    stored = await store.get_notification(made.id)
    assert created and made == stored
    assert repr(made.ack_timeout) == repr(stored.ack_timeout if stored else None)  # 60.0, not 60


async def test_a_deadline_is_kept_exactly_and_a_redrive_clears_it(store: Store) -> None:
    [n] = await queue(store, deadline=at(60), ack_timeout=2.5)
    assert n.deadline == at(60) and n.ack_timeout == 2.5
    await store.claim_due(at(0), 10, A, at(LEASE))
    expired = NotificationUpdate(Status.EXPIRED, 0, 0, None)
    skipped = AttemptRecord(Outcome.SKIPPED, "deadline passed")
    await store.finish_attempt(None, n.id, Channel.EMAIL, skipped, expired, at(61), A)
    again = await store.redrive(n.id, at(70))
    assert again.status is Status.QUEUED and again.deadline is None and again.next_attempt_at == at(70)
    assert [a.outcome for a in again.attempts] == [Outcome.SKIPPED]
    with pytest.raises(Conflict):
        await store.redrive(n.id, at(71))


# -- the bot's side ------------------------------------------------------------------------------------

async def test_acknowledge_only_from_the_recipients_chat_and_only_once(store: Store) -> None:
    ann = await store.add_recipient("Ann", None, None, 555)
    plain, _ = await store.create_notification(NewNotification(ann.id, "no ack asked", (Channel.TELEGRAM,)), at(0))
    new = NewNotification(ann.id, "press it", (Channel.TELEGRAM, Channel.EMAIL), ack_timeout=60)
    n, _ = await store.create_notification(new, at(0))
    assert (await store.acknowledge(n.id, 999, at(1))).outcome is AckOutcome.NOT_FOUND  # another chat
    assert (await store.acknowledge(plain.id, 555, at(1))).outcome is AckOutcome.NOT_FOUND
    result = await store.acknowledge(n.id, 555, at(2))
    assert result.outcome is AckOutcome.ACKNOWLEDGED and result.notification is not None
    assert result.notification.status is Status.ACKNOWLEDGED and result.notification.next_attempt_at is None
    assert (await store.acknowledge(n.id, 555, at(3))).outcome is AckOutcome.ALREADY
    await store.cancel(plain.id, at(4))
    closed, _ = await store.create_notification(NewNotification(ann.id, "x", (Channel.TELEGRAM,), ack_timeout=5), at(0))
    await store.cancel(closed.id, at(4))
    assert (await store.acknowledge(closed.id, 555, at(5))).outcome is AckOutcome.CLOSED


async def test_link_tokens_link_once_expire_and_never_move_a_chat(store: Store) -> None:
    ann = await store.add_recipient("Ann", None, None, None)
    await store.update_recipient(ann.id, {"opt_out": {Channel.TELEGRAM, Channel.SMS}})
    bob = await store.add_recipient("Bob", None, None, 777)
    await store.create_link_token(ann.id, "tok-ann", at(0), at(60))
    await store.create_link_token(ann.id, "tok-late", at(0), at(10))
    await store.create_link_token(ann.id, "tok-taken", at(0), at(60))

    linked = await store.redeem_link_token("tok-ann", 555, at(1))
    assert linked.outcome is LinkOutcome.LINKED and linked.recipient is not None
    assert linked.recipient.telegram_chat_id == 555 and linked.recipient.opt_out == {Channel.SMS}  # opted in
    assert (await store.redeem_link_token("tok-ann", 555, at(2))).outcome is LinkOutcome.ALREADY_LINKED
    assert (await store.redeem_link_token("tok-ann", 556, at(2))).outcome is LinkOutcome.USED
    assert (await store.redeem_link_token("tok-late", 556, at(11))).outcome is LinkOutcome.EXPIRED
    assert (await store.redeem_link_token("nope", 556, at(2))).outcome is LinkOutcome.UNKNOWN
    taken = await store.redeem_link_token("tok-taken", 777, at(3))
    assert taken.outcome is LinkOutcome.CHAT_TAKEN and taken.holder is not None and taken.holder.id == bob.id
    with pytest.raises(NotFound):
        await store.create_link_token(999, "tok-x", at(0), at(60))


# -- recipients ------------------------------------------------------------------------------------------

async def test_recipients_keep_one_chat_each_and_leave_only_when_nothing_is_pending(store: Store) -> None:
    ann = await store.add_recipient("Ann", "ann@example.com", "+15005550006", 555)
    assert await store.get_recipient_by_chat(555) == ann
    with pytest.raises(Conflict):
        await store.add_recipient("Eve", None, None, 555)
    bob = await store.add_recipient("Bob", None, None, None)
    with pytest.raises(Conflict):
        await store.update_recipient(bob.id, {"telegram_chat_id": 555})
    blocked = await store.set_telegram_blocked(ann.id, True)
    assert blocked.telegram_blocked and blocked.telegram_state == "blocked"
    assert [r.name for r in await store.list_recipients()] == ["Ann", "Bob"]

    n, _ = await store.create_notification(NewNotification(bob.id, "x", (Channel.EMAIL,)), at(0))
    with pytest.raises(Conflict):
        await store.remove_recipient(bob.id)
    await store.cancel(n.id, at(1))
    await store.remove_recipient(bob.id)
    assert await store.get_recipient(bob.id) is None
    with pytest.raises(NotFound):
        await store.remove_recipient(bob.id)
    with pytest.raises(NotFound):
        await store.update_recipient(bob.id, {"name": "Robert"})


# -- reads, retention, counts ----------------------------------------------------------------------------

async def test_listing_filters_pages_and_searches_newest_first(store: Store) -> None:
    made = await queue(store, 5)
    await store.cancel(made[1].id, at(1))
    assert [n.id for n in await store.list_notifications(limit=2)] == [made[4].id, made[3].id]
    assert [n.id for n in await store.list_notifications(before_id=made[3].id)] == [made[2].id, made[1].id,
                                                                                    made[0].id]
    assert [n.id for n in await store.list_notifications(status=Status.CANCELLED)] == [made[1].id]
    assert [n.id for n in await store.list_notifications(search="SAGE 3")] == [made[3].id]
    assert await store.list_notifications(recipient_id=made[0].recipient_id + 1) == []


async def test_prune_deletes_old_final_notifications_with_their_attempts_only(store: Store) -> None:
    old_final, old_queued, recent_final, old_claimed = await queue(store, 4)
    await store.claim_due(at(0), 10, A, at(LEASE))
    for n in (old_final, recent_final, old_claimed):
        attempt_id = await store.start_attempt(n.id, Channel.EMAIL, at(1), 1, A)
        release = n is not old_claimed
        update = NotificationUpdate(Status.DELIVERED, 0, 1, None, release=release)
        await store.finish_attempt(attempt_id, n.id, Channel.EMAIL, AttemptRecord(Outcome.DELIVERED), update,
                                   at(2) if n is not recent_final else at(500), A)
    await store.finish_attempt(None, old_queued.id, Channel.EMAIL, AttemptRecord(Outcome.RETRY, "later"),
                               NotificationUpdate(Status.QUEUED, 0, 0, at(900)), at(2), A)

    assert await store.prune(at(100)) == 1
    assert await store.get_notification(old_final.id) is None
    assert {n.id for n in await store.list_notifications()} == {old_queued.id, recent_final.id, old_claimed.id}
    health = await store.channel_health(at(0))
    assert health == {"email": {"delivered": 2, "retry": 1}}  # the pruned one's attempt went with it


async def test_counts_and_channel_health_add_up(store: Store) -> None:
    made = await queue(store, 3)
    await store.claim_due(at(0), 1, A, at(LEASE))
    attempt_id = await store.start_attempt(made[0].id, Channel.EMAIL, at(1), 1, A)
    await store.finish_attempt(attempt_id, made[0].id, Channel.EMAIL, AttemptRecord(Outcome.FAILED, "550"),
                               NotificationUpdate(Status.FAILED, 0, 1, None), at(2), A)
    await store.cancel(made[1].id, at(3))
    assert await store.counts_by_status() == {"failed": 1, "cancelled": 1, "queued": 1}
    assert await store.channel_health(at(0)) == {"email": {"failed": 1}}
    assert await store.channel_health(at(3)) == {}
    assert not await store.awaiting_ack(made[2].id)


async def test_channel_activity_counts_per_bucket_and_times_the_provider_calls(store: Store) -> None:
    first, second, third = await queue(store, 3)
    await store.claim_due(at(0), 10, A, at(300))
    one = await store.start_attempt(first.id, Channel.EMAIL, at(10), 1, A)
    await store.finish_attempt(one, first.id, Channel.EMAIL, *delivered(), now=at(20), owner=A)
    two = await store.start_attempt(second.id, Channel.EMAIL, at(30), 1, A)
    await store.finish_attempt(two, second.id, Channel.EMAIL, AttemptRecord(Outcome.RETRY, "451"),
                               NotificationUpdate(Status.SENDING, 0, 1, at(999)), at(90), A)
    await store.finish_attempt(None, third.id, Channel.EMAIL, AttemptRecord(Outcome.SKIPPED, "no address"),
                               NotificationUpdate(Status.SENDING, 1, 0, at(150), release=False), at(150), A)

    activity = await store.channel_activity(at(0), 3, 60.0)
    assert set(activity) == {"email"}
    series = {outcome: counts for outcome, counts in activity["email"].per_bucket.items() if any(counts)}
    assert series == {"delivered": [1, 0, 0], "retry": [0, 1, 0], "skipped": [0, 0, 1]}
    assert activity["email"].durations == (60.0, 10.0)  # newest first; a skip is no provider call
    assert await store.channel_activity(at(180), 3, 60.0) == {}


async def test_ping_answers_while_open_and_refuses_once_closed(open_store: Opener) -> None:
    store = await open_store()
    await store.ping()
    await store.close()
    with pytest.raises(StorageError):
        await store.ping()


async def test_a_pause_set_by_one_daemon_is_read_by_another(open_store: Opener) -> None:
    a, b = await open_store(), await open_store()
    assert await b.get_paused() is False
    await a.set_paused(True, at(0), A)
    assert await b.get_paused() is True
    await b.set_paused(False, at(1), B)
    assert await a.get_paused() is False
