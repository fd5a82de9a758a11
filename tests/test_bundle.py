"""Bundling an alert storm (``[bundle] window``): the pure rules, then the real daemon against the loopback
simulators on a fake clock (SQLite, and PostgreSQL where the claims differ). A window is held open by the
injected clock: nothing is sent until the test advances it past the window and pokes the engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon.core.bundle import BundlePolicy, compose, cut_note, fits_for, joins, noted
from daemon.core.errors import ConfigError
from daemon.core.failover import Plan, Send, StepKind
from daemon.core.models import AttemptRecord, Channel, NotificationUpdate, Outcome, Priority, Recipient, Status
from daemon.core.sms_segments import sms_segments
from daemon.simulators.suite import SimulatorSuite
from tests.conftest import FakeClock, RunningDaemon, make_config, start_daemon, stop_daemon

WINDOW = 30.0
ANN_CHAT, BOB_CHAT = 1001, 1002
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

# -- composing the text, pure ---------------------------------------------------------------------------


def test_a_bundle_lists_every_text_newest_first_under_a_count_line() -> None:
    composed = compose(["third", "second", "first"], fits_for(Channel.TELEGRAM, 10))
    assert composed.text == "3 notifications:\n\nthird\n\nsecond\n\nfirst"
    assert (composed.shown, composed.cut, composed.subject) == (3, 0, "3 notifications")


def test_one_text_goes_as_it_is() -> None:
    assert compose(["disk full"], fits_for(Channel.TELEGRAM, 10)).text == "disk full"


def test_a_bundle_over_telegrams_limit_keeps_the_newest_whole_texts_and_says_how_many_were_cut() -> None:
    texts = [f"alert {i:02d} " + "x" * 490 for i in range(20, 0, -1)]  # 20 texts of 499 characters, newest first
    composed = compose(texts, fits_for(Channel.TELEGRAM, 10))
    assert len(composed.text.encode("utf-16-le")) // 2 <= 4096
    assert composed.shown == 8 and composed.cut == 12  # 8 x (499 + 2) + the count line and the note fit
    assert composed.text.startswith("20 notifications:\n\nalert 20 ")
    assert composed.text.endswith("\n\n" + cut_note(12))
    assert "alert 13 " in composed.text and "alert 12 " not in composed.text


def test_telegrams_limit_counts_utf16_units_so_emoji_cost_two() -> None:
    texts = ["🔥" * 1500, "🔥" * 1500]  # 3000 units each: the second does not fit beside the first
    composed = compose(texts, fits_for(Channel.TELEGRAM, 10))
    assert (composed.shown, composed.cut) == (1, 1)
    assert len(composed.text.encode("utf-16-le")) // 2 <= 4096


def test_a_newest_text_too_long_on_its_own_is_shortened_not_dropped() -> None:
    composed = compose(["y" * 5000, "older"], fits_for(Channel.TELEGRAM, 10))
    assert composed.text.startswith("2 notifications:\n\nyyyy") and "…\n\n" + cut_note(1) in composed.text
    assert len(composed.text) <= 4096 and (composed.shown, composed.cut) == (1, 1)


def test_an_sms_bundle_stays_within_max_segments() -> None:
    texts = [f"host{i} down" for i in range(40)]
    composed = compose(texts, fits_for(Channel.SMS, 2))
    assert sms_segments(composed.text) <= 2 and composed.cut > 0
    assert composed.shown + composed.cut == 40 and composed.text.endswith(cut_note(composed.cut))


def test_each_members_attempt_names_its_bundle_and_says_when_its_text_was_cut() -> None:
    record = AttemptRecord(Outcome.DELIVERED, None, "77")
    plan = Plan(StepKind.DONE, Channel.TELEGRAM, record, NotificationUpdate(Status.DELIVERED, 0, 1, None), NOW)
    assert noted(plan, 3, 12, cut=False).record.error == "delivered in bundle of 3 (lead #12)"
    assert noted(plan, 3, 12, cut=True).record.error == (
        "delivered in bundle of 3 (lead #12); its text was cut for length")
    failed = replace(plan, record=AttemptRecord(Outcome.FAILED, "chat not found"))
    assert noted(failed, 3, 12, cut=False).record.error == "chat not found; in bundle of 3 (lead #12)"


# -- who joins a window, pure ---------------------------------------------------------------------------


def _send(channel: Channel = Channel.TELEGRAM, ack: bool = False) -> Send:
    return Send(channel, Recipient(1, "Ann", telegram_chat_id=ANN_CHAT), 1, ack_requested=ack)


@pytest.mark.parametrize("priority", [Priority.HIGH, Priority.CRITICAL])
def test_high_and_critical_are_never_bundled(priority: Priority) -> None:
    assert not joins(BundlePolicy(WINDOW), _send(), priority, None, NOW, False)
    assert joins(BundlePolicy(WINDOW), _send(), Priority.LOW, None, NOW, False)


def test_window_zero_bundles_nothing() -> None:
    assert not joins(BundlePolicy(0.0), _send(), Priority.NORMAL, None, NOW, False)


def test_a_notification_waiting_for_an_ack_goes_alone() -> None:
    assert not joins(BundlePolicy(WINDOW), _send(ack=True), Priority.NORMAL, None, NOW, False)


def test_a_deadline_inside_the_window_sends_at_once_rather_than_expire_waiting() -> None:
    policy = BundlePolicy(WINDOW)
    assert not joins(policy, _send(), Priority.NORMAL, NOW + timedelta(seconds=10), NOW, False)
    assert joins(policy, _send(), Priority.NORMAL, NOW + timedelta(seconds=60), NOW, False)


def test_an_sms_is_not_bundled_while_delivery_receipts_are_on() -> None:
    assert not joins(BundlePolicy(WINDOW), _send(Channel.SMS), Priority.NORMAL, None, NOW, True)
    assert joins(BundlePolicy(WINDOW), _send(Channel.SMS), Priority.NORMAL, None, NOW, False)


@pytest.mark.parametrize(("value", "problem"), [
    (-1, "greater than or equal to 0"), (86_400, "less than or equal to 3600"),
    (float("nan"), "finite"), (float("inf"), "finite"), ("soon", "valid number"),
])
def test_a_bad_window_is_refused_naming_the_key(tmp_path: Path, value: Any, problem: str) -> None:
    with pytest.raises(ConfigError, match=rf"\[bundle\] window: .*{problem}"):
        make_config(tmp_path, bundle={"window": value})


# -- the real daemon, a fake clock ----------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def storage(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The [storage] section: SQLite in the state dir, or a new PostgreSQL database (tests/pg.py)."""
    if request.param == "sqlite":
        return {}
    return {"url": request.getfixturevalue("pg_database")}


def bundling_config(root: Path, suite: SimulatorSuite, window: float = WINDOW,
                    storage: dict[str, Any] | None = None, **overrides: dict[str, Any]) -> Any:
    sections = suite.config_sections()
    sections["telegram"] = {**sections["telegram"], "rate_per_chat": 1000.0}  # an unbundled storm is not paced
    for name, values in overrides.items():
        sections[name] = {**sections.get(name, {}), **values}
    return make_config(root, **sections, bundle={"window": window}, storage=storage or {})


@pytest.fixture
async def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def bundling(short_tmp: Path, suite: SimulatorSuite, clock: FakeClock,
                   storage: dict[str, Any]) -> AsyncIterator[RunningDaemon]:
    running = await start_daemon(bundling_config(short_tmp, suite, storage=storage), clock=clock.now,
                                 monotonic=clock.monotonic)
    yield running
    await stop_daemon(running)


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def waiting(running: RunningDaemon) -> int:
    return len(running.daemon.engine.bundler.windows.held())


async def add(running: RunningDaemon, name: str, chat: int) -> int:
    recipient = await running.call("recipient.add", name=name, email=f"{name.lower()}@example.com",
                                   telegram_chat_id=chat)
    return int(recipient["id"])


async def send(running: RunningDaemon, recipient_id: int, message: str, **params: Any) -> int:
    return int((await running.call("send", recipient_id=recipient_id, message=message, **params))["id"])


async def close_window(running: RunningDaemon, clock: FakeClock) -> None:
    clock.advance(WINDOW)
    running.daemon.engine.poke()


async def test_a_storm_of_20_to_each_of_2_recipients_is_one_telegram_message_each(
    bundling: RunningDaemon, suite: SimulatorSuite, clock: FakeClock
) -> None:
    ann, bob = await add(bundling, "Ann", ANN_CHAT), await add(bundling, "Bob", BOB_CHAT)
    ids: dict[int, list[int]] = {ann: [], bob: []}
    for i in range(20):
        for who in (ann, bob):
            ids[who].append(await send(bundling, who, f"disk {i} full on host {who}"))
    await eventually(lambda: waiting(bundling) == 40)
    assert suite.telegram.messages == []  # the window is open: nothing is sent before it closes
    await close_window(bundling, clock)
    finals = {who: [await bundling.wait_final(i) for i in ids[who]] for who in ids}
    assert len(suite.telegram.messages) == 2
    for who, chat in ((ann, ANN_CHAT), (bob, BOB_CHAT)):
        (message,) = suite.telegram.messages_to(chat)
        texts = [f"disk {i} full on host {who}" for i in range(19, -1, -1)]  # newest first
        assert message.text == "\n\n".join(["20 notifications:", *texts])
        lead = min(ids[who])
        for final in finals[who]:
            (attempt,) = final["attempts"]
            assert final["status"] == "delivered" and attempt["outcome"] == "delivered"
            assert attempt["provider_message_id"] == str(message.message_id)
            assert attempt["error"] == f"delivered in bundle of 20 (lead #{lead})"
    assert not suite.smtp.received


async def test_a_critical_notification_during_the_storm_goes_at_once_unbundled(
    bundling: RunningDaemon, suite: SimulatorSuite, clock: FakeClock
) -> None:
    ann = await add(bundling, "Ann", ANN_CHAT)
    storm = [await send(bundling, ann, f"cpu {i}") for i in range(5)]
    await eventually(lambda: waiting(bundling) == 5)
    urgent = await bundling.wait_final(await send(bundling, ann, "database down", priority="critical"))
    assert [m.text for m in suite.telegram.messages] == ["database down"]  # not delayed, not bundled
    assert urgent["status"] == "delivered" and urgent["attempts"][0]["error"] is None
    assert waiting(bundling) == 5
    await close_window(bundling, clock)
    assert {(await bundling.wait_final(i))["status"] for i in storm} == {"delivered"}
    assert [m.text.splitlines()[0] for m in suite.telegram.messages] == ["database down", "5 notifications:"]


async def test_a_notification_cancelled_while_it_waits_is_left_out(
    bundling: RunningDaemon, suite: SimulatorSuite, clock: FakeClock
) -> None:
    ann = await add(bundling, "Ann", ANN_CHAT)
    first, second, third = [await send(bundling, ann, text) for text in ("one", "two", "three")]
    await eventually(lambda: waiting(bundling) == 3)
    await bundling.call("cancel", id=second)
    await close_window(bundling, clock)
    await bundling.wait_final(first)
    await bundling.wait_final(third)
    (message,) = suite.telegram.messages
    assert message.text == "2 notifications:\n\nthree\n\none"
    cancelled = await bundling.call("show", id=second)
    assert cancelled["status"] == "cancelled" and cancelled["attempts"] == []


async def test_a_bundle_refused_for_good_moves_each_member_to_its_next_channel(
    bundling: RunningDaemon, suite: SimulatorSuite, clock: FakeClock
) -> None:
    ann = await add(bundling, "Ann", ANN_CHAT)
    suite.telegram.faults.inject("permanent", target=ANN_CHAT)
    ids = [await send(bundling, ann, f"queue {i} stuck") for i in range(3)]
    await eventually(lambda: waiting(bundling) == 3)
    await close_window(bundling, clock)
    # the one Telegram call failed: each member failed over to email, where a new window opens
    await eventually(lambda: waiting(bundling) == 3 and "sendMessage" in suite.telegram.requests)
    assert suite.telegram.requests.count("sendMessage") == 1
    assert not suite.smtp.received
    await close_window(bundling, clock)
    finals = [await bundling.wait_final(i) for i in ids]
    lead = min(ids)
    for final in finals:
        telegram, email = final["attempts"]
        assert (telegram["channel"], telegram["outcome"]) == ("telegram", "failed")
        assert telegram["error"] == f"Telegram refused: Bad Request: chat not found; in bundle of 3 (lead #{lead})"
        assert (email["channel"], email["outcome"], final["status"]) == ("email", "delivered", "delivered")
        assert email["error"] == f"delivered in bundle of 3 (lead #{lead})"
    (mail,) = suite.smtp.received
    assert mail.subject == "3 notifications" and mail.text.index("queue 2 stuck") < mail.text.index("queue 0 stuck")


async def test_window_zero_sends_each_notification_on_its_own(
    short_tmp: Path, suite: SimulatorSuite, clock: FakeClock
) -> None:
    running = await start_daemon(bundling_config(short_tmp, suite, window=0), clock=clock.now,
                                 monotonic=clock.monotonic)
    try:
        ann = await add(running, "Ann", ANN_CHAT)
        finals = [await running.wait_final(await send(running, ann, f"disk {i}")) for i in range(3)]
    finally:
        await stop_daemon(running)
    assert [m.text for m in suite.telegram.messages] == ["disk 0", "disk 1", "disk 2"]
    assert all(f["attempts"][0]["error"] is None for f in finals)


async def test_a_bundle_that_fails_for_now_is_retried_per_retry_and_bundled_again(
    bundling: RunningDaemon, suite: SimulatorSuite, clock: FakeClock
) -> None:
    ann = await add(bundling, "Ann", ANN_CHAT)
    suite.telegram.faults.inject("error", target=ANN_CHAT, count=1)
    ids = [await send(bundling, ann, f"link {i} flapping") for i in range(3)]
    await eventually(lambda: waiting(bundling) == 3)
    await close_window(bundling, clock)
    async with asyncio.timeout(10):  # each member's retry is written (due by the clock as it was then)
        while [a["outcome"] for i in ids for a in (await bundling.call("show", id=i))["attempts"]] != ["retry"] * 3:
            await asyncio.sleep(0.01)
    clock.advance(1.0)  # past [retry] backoff (0.2 s at most here): the retries come due, and open a window
    bundling.daemon.engine.poke()
    await eventually(lambda: waiting(bundling) == 3)
    assert suite.telegram.messages == []
    await close_window(bundling, clock)
    finals = [await bundling.wait_final(i) for i in ids]
    (message,) = suite.telegram.messages
    assert message.text.startswith("3 notifications:")
    for final in finals:
        assert [a["outcome"] for a in final["attempts"]] == ["retry", "delivered"]
        assert final["attempts"][0]["error"].endswith(f"; in bundle of 3 (lead #{min(ids)})")


async def test_a_pause_holds_a_closed_window_until_resume(
    bundling: RunningDaemon, suite: SimulatorSuite, clock: FakeClock
) -> None:
    ann = await add(bundling, "Ann", ANN_CHAT)
    ids = [await send(bundling, ann, f"job {i} late") for i in range(2)]
    await eventually(lambda: waiting(bundling) == 2)
    await bundling.call("pause")
    await close_window(bundling, clock)
    await bundling.daemon.engine.run_due()  # what a wake-up does, awaited: a paused engine sends nothing
    assert suite.telegram.messages == [] and waiting(bundling) == 2
    await bundling.call("resume")
    assert {(await bundling.wait_final(i))["status"] for i in ids} == {"delivered"}
    assert [m.text for m in suite.telegram.messages] == ["2 notifications:\n\njob 1 late\n\njob 0 late"]


async def test_an_sms_storm_is_one_sms_within_max_segments_and_the_members_cut_say_so(
    short_tmp: Path, suite: SimulatorSuite, clock: FakeClock
) -> None:
    config = bundling_config(short_tmp, suite, chain={"default": ["sms"]}, sms={"max_segments": 2})
    running = await start_daemon(config, clock=clock.now, monotonic=clock.monotonic)
    try:
        ann = int((await running.call("recipient.add", name="Ann", phone="+14155550100"))["id"])
        ids = [await send(running, ann, f"host{i} down") for i in range(40)]
        await eventually(lambda: waiting(running) == 40)
        await close_window(running, clock)
        finals = [await running.wait_final(i) for i in ids]
    finally:
        await stop_daemon(running)
    (sms,) = suite.sms.messages
    assert sms.body.startswith("40 notifications:\n\nhost39 down\n\nhost38 down") and sms_segments(sms.body) <= 2
    notes = [f["attempts"][0]["error"] for f in finals]
    cut = [n for n in notes if n.endswith("its text was cut for length")]
    assert sms.body.endswith(cut_note(len(cut))) and 0 < len(cut) < 40
    assert all(n.startswith(f"delivered in bundle of 40 (lead #{min(ids)})") for n in notes)
    assert all(f["status"] == "delivered" for f in finals)
