"""The store contract for the SMS ledger, on SQLite and a real PostgreSQL (the fixtures are
``tests.test_store_contract``'s): receipt waits on disk, receipts (known, unknown, too late, from
another daemon), a cancel during the wait, and the caps' counts over sliding windows and the UTC day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from daemon.core.models import AttemptRecord, Channel, Notification, NotificationUpdate, Outcome, Status
from daemon.core.sms_caps import day_start
from daemon.core.sms_receipt import CANCELLED_NOTE
from daemon.core.store import Store
from tests.test_store_contract import LEASE, A, B, Opener, at, open_store, queue, store  # noqa: F401  (fixtures)

TIMEOUT = 600.0


async def waiting(store: Store, sid: str, *, due: float = 0, owner: str = A) -> tuple[Notification, int]:  # noqa: F811
    """A notification whose SMS (second in its chain) the provider accepted at ``at(due + 1)``: its
    attempt left open, waiting for the receipt until ``at(due + 1 + TIMEOUT)``."""
    [n] = await queue(store, due=due)
    [claimed] = await store.claim_due(at(due), 1, owner, at(due + LEASE))
    assert claimed.id == n.id
    attempt_id = await store.start_attempt(n.id, Channel.SMS, at(due + 1), 1, owner)
    until = at(due + 1 + TIMEOUT)
    await store.await_receipt(attempt_id, n.id, sid, at(due + 1), TIMEOUT,
                              NotificationUpdate(Status.SENDING, 1, 1, until), at(due + 1), owner)
    return n, attempt_id


async def notification(store: Store, notification_id: int) -> Notification:  # noqa: F811
    found = await store.get_notification(notification_id)
    assert found is not None
    return found


# -- receipts ----------------------------------------------------------------------------------------

async def test_a_receipt_wait_is_a_released_timer_with_its_attempt_left_open(store: Store) -> None:  # noqa: F811
    n, attempt_id = await waiting(store, "SM1")
    [receipt] = await store.pending_receipts()
    assert (receipt.message_sid, receipt.notification_id, receipt.attempt_id) == ("SM1", n.id, attempt_id)
    assert (receipt.wait_until, receipt.timeout, receipt.status, receipt.final) == (at(1 + TIMEOUT), TIMEOUT,
                                                                                   None, False)
    assert await store.pending_receipt(n.id) == receipt
    waits = await notification(store, n.id)
    assert (waits.status, waits.position, waits.next_attempt_at) == (Status.SENDING, 1, at(1 + TIMEOUT))
    [attempt] = waits.attempts
    assert (attempt.outcome, attempt.provider_message_id, attempt.finished_at) == (None, "SM1", None)
    assert await store.renew_leases(A, [n.id], at(10)) == set()  # released: not held while it waits
    assert await store.claim_due(at(TIMEOUT), 10, A, at(TIMEOUT + LEASE)) == []
    assert [c.id for c in await store.claim_due(at(1 + TIMEOUT), 10, A, at(1 + TIMEOUT + LEASE))] == [n.id]


async def test_a_receipt_posted_to_another_daemon_makes_the_wait_due_there(open_store: Opener) -> None:  # noqa: F811
    sender, other = await open_store(), await open_store()
    n, _ = await waiting(sender, "SM2", owner=A)
    assert await other.record_receipt("SM2", "sent", None, at(5)) == n.id  # not final: the timer stands
    assert (await notification(other, n.id)).next_attempt_at == at(1 + TIMEOUT)
    assert await other.record_receipt("SM2", "undelivered", 30005, at(7)) == n.id
    receipt = await sender.pending_receipt(n.id)
    assert receipt is not None and receipt.final
    assert (receipt.status, receipt.error_code, receipt.reported_at) == ("undelivered", 30005, at(7))
    [claimed] = await other.claim_due(at(7), 10, B, at(7 + LEASE))  # due at once, for whichever daemon claims
    assert claimed.id == n.id and claimed.status is Status.SENDING


async def test_a_receipt_for_an_unknown_sid_is_none_and_changes_nothing(store: Store) -> None:  # noqa: F811
    n, _ = await waiting(store, "SM3")
    before = await notification(store, n.id)
    assert await store.record_receipt("SM-unknown", "delivered", None, at(5)) is None
    assert await notification(store, n.id) == before
    [receipt] = await store.pending_receipts()
    assert receipt.status is None


async def test_a_receipt_after_its_attempt_closed_is_known_but_changes_nothing(store: Store) -> None:  # noqa: F811
    n, attempt_id = await waiting(store, "SM4")
    await store.claim_due(at(1 + TIMEOUT), 10, A, at(1 + TIMEOUT + LEASE))  # the timeout came due
    done = NotificationUpdate(Status.DELIVERED, 1, 1, None)
    await store.finish_attempt(attempt_id, n.id, Channel.SMS, AttemptRecord(Outcome.DELIVERED, "no receipt", "SM4"),
                               done, at(2 + TIMEOUT), A)
    before = await notification(store, n.id)
    assert await store.record_receipt("SM4", "undelivered", 30003, at(3 + TIMEOUT)) == n.id
    assert await notification(store, n.id) == before
    assert await store.pending_receipt(n.id) is None and await store.pending_receipts() == []


async def test_cancelling_a_wait_closes_its_attempt_as_accepted_and_keeps_a_final_receipt(
    store: Store,  # noqa: F811
) -> None:
    plain, plain_attempt = await waiting(store, "SM5", due=0)
    reported, _ = await waiting(store, "SM6", due=2)
    assert await store.record_receipt("SM6", "undelivered", 30005, at(20)) == reported.id  # due, not yet claimed
    assert (await store.cancel(plain.id, at(30))).status is Status.CANCELLED
    assert (await store.cancel(reported.id, at(31))).status is Status.CANCELLED
    [attempt] = (await notification(store, plain.id)).attempts
    assert (attempt.id, attempt.outcome, attempt.error, attempt.finished_at) == (plain_attempt, Outcome.DELIVERED,
                                                                                CANCELLED_NOTE, at(30))
    [attempt] = (await notification(store, reported.id)).attempts
    assert (attempt.outcome, attempt.error) == (Outcome.UNDELIVERED, "undelivered 30005: unknown destination handset")
    assert await store.pending_receipts() == []
    assert await store.claim_due(at(10_000), 10, A, at(10_000 + LEASE)) == []


async def test_an_sms_accepted_after_its_notification_was_cancelled_waits_for_nothing(store: Store) -> None:  # noqa: F811
    [n] = await queue(store)
    await store.claim_due(at(0), 1, A, at(LEASE))
    attempt_id = await store.start_attempt(n.id, Channel.SMS, at(1), 1, A)
    await store.cancel(n.id, at(2))  # while the provider call is in flight
    await store.await_receipt(attempt_id, n.id, "SM7", at(1), TIMEOUT,
                              NotificationUpdate(Status.SENDING, 1, 1, at(3 + TIMEOUT)), at(3), A)
    after = await notification(store, n.id)
    assert after.status is Status.CANCELLED
    [attempt] = after.attempts
    assert (attempt.outcome, attempt.error, attempt.provider_message_id) == (Outcome.DELIVERED, CANCELLED_NOTE, "SM7")
    assert await store.pending_receipts() == []
    assert await store.renew_leases(A, [n.id], at(10)) == set()  # released
    assert await store.record_receipt("SM7", "delivered", None, at(9)) == n.id  # known: the callback gets 200


# -- what SMS has cost -------------------------------------------------------------------------------

async def test_usage_counts_one_recipients_sends_in_the_window_and_every_send_today(store: Store) -> None:  # noqa: F811
    ann = await store.add_recipient("Ann", None, "+14155550100", None)
    bob = await store.add_recipient("Bob", None, "+14155550101", None)
    assert await store.record_sms_sent(ann.id, at(0), 1) == (0, 1)
    assert await store.record_sms_sent(ann.id, at(600), 2) == (1, 3)
    assert await store.record_sms_sent(bob.id, at(1200), 3) == (3, 6)
    usage = await store.sms_usage(ann.id, at(0), day_start(at(1200)))
    assert usage.recipient_sends == (at(600),)  # sliding: strictly after the window's start
    assert usage.segments_today == 6  # every recipient's segments
    usage = await store.sms_usage(ann.id, at(-1), day_start(at(1200)))
    assert sorted(usage.recipient_sends) == [at(0), at(600)]
    assert (await store.sms_usage(bob.id, at(-1), day_start(at(0)))).recipient_sends == (at(1200),)


async def test_the_daily_budget_starts_again_at_midnight_utc(store: Store) -> None:  # noqa: F811
    ann = await store.add_recipient("Ann", None, "+14155550100", None)
    midnight = datetime(2026, 1, 2, tzinfo=UTC)
    last_second = midnight - timedelta(seconds=1)
    assert await store.record_sms_sent(ann.id, last_second, 4) == (0, 4)
    assert await store.record_sms_sent(ann.id, midnight, 2) == (0, 2)  # a new UTC day: nothing used yet
    assert (await store.sms_usage(ann.id, last_second, day_start(last_second))).segments_today == 6
    usage = await store.sms_usage(ann.id, midnight - timedelta(hours=3), day_start(midnight))
    assert usage.segments_today == 2 and sorted(usage.recipient_sends) == [last_second, midnight]


async def test_two_daemons_count_the_same_budget(open_store: Opener) -> None:  # noqa: F811
    first, second = await open_store(), await open_store()
    ann = await first.add_recipient("Ann", None, "+14155550100", None)
    assert await first.record_sms_sent(ann.id, at(0), 3) == (0, 3)
    assert await second.record_sms_sent(ann.id, at(1), 2) == (3, 5)
    for store in (first, second):  # noqa: F402
        usage = await store.sms_usage(ann.id, at(-900), day_start(at(1)))
        assert usage.segments_today == 5 and len(usage.recipient_sends) == 2


async def test_sends_older_than_two_days_are_dropped(store: Store) -> None:  # noqa: F811
    ann = await store.add_recipient("Ann", None, "+14155550100", None)
    await store.record_sms_sent(ann.id, at(0), 1)
    await store.record_sms_sent(ann.id, at(3 * 86_400), 1)
    usage = await store.sms_usage(ann.id, at(-1), day_start(at(0)))
    assert usage.recipient_sends == (at(3 * 86_400),) and usage.segments_today == 1
