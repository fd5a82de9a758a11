"""Message limits handled, not crashed on: Telegram's 4096 characters, SMS segments, markup and
Unicode going through literally. The real daemon against the loopback simulators."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

from daemon.channels.telegram_text import TELEGRAM_MAX, split_message, utf16_len
from daemon.simulators.suite import SimulatorSuite
from tests.conftest import RunningDaemon, make_config, start_daemon, stop_daemon
from tests.test_delivery import CHAT, EMAIL, PHONE, add_ann, deliver, log_of

# -- splitting, pure --------------------------------------------------------------------------------


def test_a_text_that_fits_is_one_part() -> None:
    assert split_message("short") == ["short"]
    assert split_message("") == [""]
    assert split_message("x" * TELEGRAM_MAX) == ["x" * TELEGRAM_MAX]


def test_a_long_text_is_split_at_the_last_line_break_that_fits() -> None:
    lines = [f"line {i:04d} " + "." * 90 for i in range(100)]  # 100 lines of 100 characters
    parts = split_message("\n".join(lines))
    assert len(parts) == 3
    assert all(part.endswith("\n") for part in parts[:-1])
    assert parts[0].splitlines() == lines[:40] and parts[1].splitlines() == lines[40:80]


def test_a_line_longer_than_the_limit_is_split_at_a_space_else_hard() -> None:
    assert split_message("aaaa bbbb cccc", limit=10) == ["aaaa bbbb ", "cccc"]
    assert split_message("abcdefghij" * 2, limit=8) == ["abcdefgh", "ijabcdef", "ghij"]


def test_an_emoji_is_never_cut_in_half() -> None:
    parts = split_message("a" + "👋" * 5, limit=4)
    assert parts == ["a👋", "👋👋", "👋👋"]


@hypothesis.settings(max_examples=200, deadline=None, derandomize=True, database=None)
@hypothesis.given(text=st.text(alphabet=st.sampled_from("ab \n👋ж"), max_size=200), limit=st.integers(2, 30))
def test_splitting_loses_nothing_and_every_part_fits(text: str, limit: int) -> None:
    parts = split_message(text, limit)
    assert "".join(parts) == text
    assert all(utf16_len(p) <= limit for p in parts)
    assert all(parts) or parts == [""]


# -- end to end -----------------------------------------------------------------------------------

async def daemon_with(short_tmp: Path, suite: SimulatorSuite, **overrides: dict[str, Any]) -> RunningDaemon:
    sections = suite.config_sections()
    for name, values in overrides.items():
        sections.setdefault(name, {}).update(values)
    return await start_daemon(make_config(short_tmp, **sections))


@pytest.fixture
async def daemon(short_tmp: Path, suite: SimulatorSuite) -> AsyncIterator[RunningDaemon]:
    running = await daemon_with(short_tmp, suite, telegram={"rate_per_chat": 50.0})
    yield running
    await stop_daemon(running)


async def test_a_long_text_goes_to_telegram_as_several_messages_split_on_lines(
    daemon: RunningDaemon, suite: SimulatorSuite
) -> None:
    ann = await add_ann(daemon)
    text = "\n".join(f"{i:05d} log line with some detail" for i in range(300))  # ~10,500 characters
    final = await deliver(daemon, ann, message=text, ack_timeout=60, chain=["telegram"])
    assert log_of(final) == [("telegram", "delivered")]
    received = suite.telegram.messages_to(CHAT)
    assert len(received) == 3 and "".join(m.text for m in received) == text
    assert all(m.text.endswith("\n") for m in received[:-1])  # cut at line boundaries
    assert [bool(m.callback_data) for m in received] == [False, False, True]  # "Got it" on the last part
    assert final["attempts"][0]["provider_message_id"] == ",".join(str(m.message_id) for m in received)


async def test_a_text_above_max_parts_is_refused_for_telegram_and_fails_over_to_email(
    short_tmp: Path, suite: SimulatorSuite
) -> None:
    daemon = await daemon_with(short_tmp, suite, telegram={"max_parts": 1})
    try:
        ann = await add_ann(daemon)
        text = "x" * (TELEGRAM_MAX + 1)
        final = await deliver(daemon, ann, message=text)
    finally:
        await stop_daemon(daemon)
    assert log_of(final) == [("telegram", "failed"), ("email", "delivered")]
    assert "max_parts" in final["attempts"][0]["error"]
    assert not suite.telegram.messages and text in suite.smtp.received[0].text


async def test_a_text_above_max_segments_is_refused_for_sms(short_tmp: Path, suite: SimulatorSuite) -> None:
    daemon = await daemon_with(short_tmp, suite, sms={"max_segments": 2})
    try:
        ann = await add_ann(daemon)
        fits = await deliver(daemon, ann, message="a" * 306, chain=["sms"])  # two GSM-7 segments
        too_long = await deliver(daemon, ann, message="ж" * 135, chain=["sms"])  # three UCS-2 segments
    finally:
        await stop_daemon(daemon)
    assert fits["status"] == "delivered"
    assert too_long["status"] == "failed" and log_of(too_long) == [("sms", "failed")]
    assert "3 segments, at most 2" in too_long["attempts"][0]["error"]
    assert [m.body for m in suite.sms.messages] == ["a" * 306]


MARKUP = "<b>bold?</b> *star* _under_ [link](http://x) `code` &amp; <i>"


async def test_telegram_markup_in_the_text_arrives_literally_without_a_parse_mode(
    daemon: RunningDaemon, suite: SimulatorSuite
) -> None:
    ann = await add_ann(daemon)
    final = await deliver(daemon, ann, message=MARKUP)
    assert final["status"] == "delivered"
    (received,) = suite.telegram.messages_to(CHAT)
    assert received.text == MARKUP and received.parse_mode is None


UNICODE = "Привет 👋 café ñ 日本語 🇺🇦 👩‍💻"


@pytest.mark.parametrize("channel", ["telegram", "email", "sms"])
async def test_unicode_and_emoji_round_trip_on_every_channel(
    daemon: RunningDaemon, suite: SimulatorSuite, channel: str
) -> None:
    ann = await add_ann(daemon)
    final = await deliver(daemon, ann, message=UNICODE, subject="Тема 🔔", chain=[channel])
    assert log_of(final) == [(channel, "delivered")]
    if channel == "telegram":
        assert [m.text for m in suite.telegram.messages_to(CHAT)] == [UNICODE]
    elif channel == "email":
        (mail,) = suite.smtp.received
        assert mail.rcpt_tos == (EMAIL,) and mail.subject == "Тема 🔔" and UNICODE in mail.text
    else:
        assert [(m.to, m.body) for m in suite.sms.messages] == [(PHONE, UNICODE)]
