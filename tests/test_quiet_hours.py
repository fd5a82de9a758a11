"""Quiet hours and priority: the pure window arithmetic (midnight, both DST changes), then the engine
holding and releasing on a fake clock against a real SQLite store. No sleeps: the clock is advanced."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon.core.models import Priority, Status
from daemon.core.quiet_hours import parse_timezone, parse_window, quiet_until
from daemon.storage import SqliteStore
from tests.conftest import FakeClock
from tests.test_engine import Harness

BERLIN = parse_timezone("Europe/Berlin")  # CET/CEST: 2026-03-29 02:00 -> 03:00, 2026-10-25 03:00 -> 02:00
NIGHT = parse_window("22:00-07:00")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- the window ---------------------------------------------------------------------------------------

def test_a_window_across_midnight_holds_late_evening_and_early_morning_only() -> None:
    moscow = parse_timezone("Europe/Moscow")  # UTC+3 all year
    assert quiet_until(NIGHT, moscow, utc(2026, 1, 1, 19, 0)) == utc(2026, 1, 2, 4, 0)  # 22:00 local: until 07:00
    assert quiet_until(NIGHT, moscow, utc(2026, 1, 2, 1, 0)) == utc(2026, 1, 2, 4, 0)  # 04:00 local: same night
    assert quiet_until(NIGHT, moscow, utc(2026, 1, 2, 4, 0)) is None  # 07:00 local: over (end excluded)
    assert quiet_until(NIGHT, moscow, utc(2026, 1, 1, 18, 59)) is None  # 21:59 local
    assert quiet_until(parse_window("13:00-14:00"), moscow, utc(2026, 1, 1, 10, 30)) == utc(2026, 1, 1, 11, 0)


def test_spring_forward_night_is_an_hour_shorter_and_ends_at_seven_local() -> None:
    # 23:00 CET on 28 March: the clocks jump 02:00 -> 03:00, so 07:00 CEST is 05:00 UTC (7 h later, not 8)
    assert quiet_until(NIGHT, BERLIN, utc(2026, 3, 28, 22, 0)) == utc(2026, 3, 29, 5, 0)
    # an hour that does not exist locally is still inside the window: nothing slips through the gap
    assert quiet_until(NIGHT, BERLIN, utc(2026, 3, 29, 1, 0)) == utc(2026, 3, 29, 5, 0)  # 03:00 CEST


def test_fall_back_night_is_an_hour_longer_and_the_repeated_hour_does_not_end_it_twice() -> None:
    # 23:00 CEST on 24 October: the clocks go back 03:00 -> 02:00, so 07:00 CET is 06:00 UTC (9 h later)
    assert quiet_until(NIGHT, BERLIN, utc(2026, 10, 24, 21, 0)) == utc(2026, 10, 25, 6, 0)
    both = parse_window("01:00-02:30")  # its end comes twice that night: 00:30 UTC (CEST) and 01:30 UTC (CET)
    assert quiet_until(both, BERLIN, utc(2026, 10, 24, 23, 30)) == utc(2026, 10, 25, 0, 30)  # first 02:30 ends it
    assert quiet_until(both, BERLIN, utc(2026, 10, 25, 0, 30)) is None  # released then: not held again at once
    # inside the repeated 02:00-02:30 (CET) the end still lies ahead, never behind now (no hold-release loop)
    assert quiet_until(both, BERLIN, utc(2026, 10, 25, 1, 10)) == utc(2026, 10, 25, 1, 30)


def test_a_window_ending_inside_the_skipped_hour_ends_when_the_clocks_jump() -> None:
    window = parse_window("22:00-02:30")  # 02:30 does not exist on 29 March in Berlin
    assert quiet_until(window, BERLIN, utc(2026, 3, 28, 23, 0)) == utc(2026, 3, 29, 1, 0)  # 03:00 CEST
    assert quiet_until(window, BERLIN, utc(2026, 3, 29, 1, 0)) is None


@pytest.mark.parametrize(("text", "problem"), [
    ("22-07", "not a window"), ("24:00-07:00", "hours run"), ("07:00-07:00", "the same"), ("22:00_07:00", "not a"),
])
def test_a_bad_window_is_refused_saying_why(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_window(text)


def test_an_unknown_time_zone_is_refused() -> None:
    for name in ("Mars/Olympus", "../etc/passwd", ""):
        with pytest.raises(ValueError):
            parse_timezone(name)


# -- the engine -------------------------------------------------------------------------------------

@pytest.fixture
async def quiet(tmp_path: Path) -> AsyncIterator[Harness]:
    """Ann in Moscow with quiet hours 22:00-07:00; the clock at 23:00 Moscow time (20:00 UTC)."""
    store = SqliteStore(tmp_path / "fnotify.db")
    await store.open()
    harness = Harness(store, FakeClock(utc(2026, 1, 1, 20, 0)))
    ann = await store.add_recipient("Ann", "ann@example.com", None, 1001)
    await store.update_recipient(ann.id, {"timezone": "Europe/Moscow", "quiet_hours": "22:00-07:00"})
    harness.recipient = ann.id
    yield harness
    await harness.engine.stop(0)
    await store.close()


async def test_a_normal_notification_is_held_through_quiet_hours_then_delivered(quiet: Harness) -> None:
    sent = await quiet.send()
    assert await quiet.engine.run_due() == 1
    held = await quiet.show(sent)
    assert held.status is Status.HELD and held.next_attempt_at == utc(2026, 1, 2, 4, 0)  # 07:00 Moscow
    assert await quiet.log(sent) == [("telegram", "skipped", "quiet hours until 07:00 Europe/Moscow")]
    assert not quiet.telegram.sent
    assert await quiet.store.next_due_time() == utc(2026, 1, 2, 4, 0)  # on the durable timer
    assert await quiet.advance_and_run(8 * 3600 - 1) == 0  # 06:59:59 Moscow: still held
    assert await quiet.advance_and_run(1) == 1
    done = await quiet.show(sent)
    assert done.status is Status.DELIVERED and len(quiet.telegram.sent) == 1
    assert [a[1] for a in await quiet.log(sent)] == ["skipped", "delivered"]  # one skipped entry, not one per wake


@pytest.mark.parametrize("priority", [Priority.HIGH, Priority.CRITICAL])
async def test_high_and_critical_go_at_once_in_quiet_hours(quiet: Harness, priority: Priority) -> None:
    sent = await quiet.send(priority=priority)
    await quiet.engine.run_due()
    assert (await quiet.show(sent)).status is Status.DELIVERED
    assert await quiet.log(sent) == [("telegram", "delivered", None)]


async def test_low_priority_is_held_too(quiet: Harness) -> None:
    sent = await quiet.send(priority=Priority.LOW)
    await quiet.engine.run_due()
    assert (await quiet.show(sent)).status is Status.HELD


async def test_a_deadline_inside_the_window_wins_and_the_held_notification_expires(quiet: Harness) -> None:
    sent = await quiet.send(deadline=utc(2026, 1, 1, 22, 0))  # 01:00 Moscow, before the window ends
    await quiet.engine.run_due()
    held = await quiet.show(sent)
    assert held.status is Status.HELD and held.next_attempt_at == utc(2026, 1, 1, 22, 0)  # due at the deadline
    assert await quiet.advance_and_run(2 * 3600) == 1
    expired = await quiet.show(sent)
    assert expired.status is Status.EXPIRED and not quiet.telegram.sent and not quiet.email.sent
    assert [a[1] for a in await quiet.log(sent)] == ["skipped", "skipped"]
    assert "deadline" in ((await quiet.log(sent))[1][2] or "")


async def test_a_held_notification_is_released_at_seven_local_across_a_dst_change(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "fnotify.db")
    await store.open()
    try:
        h = Harness(store, FakeClock(utc(2026, 3, 28, 22, 0)))  # 23:00 CET, the night the clocks go forward
        ann = await store.add_recipient("Ann", "ann@example.com", None, 1001)
        await store.update_recipient(ann.id, {"timezone": "Europe/Berlin", "quiet_hours": "22:00-07:00"})
        h.recipient = ann.id
        sent = await h.send()
        await h.engine.run_due()
        assert (await h.show(sent)).next_attempt_at == utc(2026, 3, 29, 5, 0)  # 07:00 CEST, 7 h on
        assert await h.log(sent) == [("telegram", "skipped", "quiet hours until 07:00 Europe/Berlin")]
        assert await h.advance_and_run(7 * 3600) == 1
        assert (await h.show(sent)).status is Status.DELIVERED
    finally:
        await store.close()


async def test_a_backlog_is_claimed_higher_priority_first(quiet: Harness) -> None:
    await quiet.store.update_recipient(quiet.recipient, {"quiet_hours": None})
    low = await quiet.send(text="low", priority=Priority.LOW)
    normal = await quiet.send(text="normal")
    critical = await quiet.send(text="critical", priority=Priority.CRITICAL)
    quiet.engine.max_in_flight = 1  # one at a time, so the order of claims is the order of sends
    while await quiet.engine.run_due():
        pass
    assert [m.notification_id for m in quiet.telegram.sent] == [critical, normal, low]
