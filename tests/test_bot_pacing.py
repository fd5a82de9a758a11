"""The bot's replies are paced with the notifications: one per-chat and one per-bot budget.

The real daemon polls the loopback Telegram simulator with its flood control on (a 429 beyond the
limits); a user types commands as fast as they like.
"""

from __future__ import annotations

import time
from pathlib import Path

from daemon.simulators.suite import SimulatorSuite
from tests.conftest import stop_daemon
from tests.test_bot import chat_texts, eventually, start

CHAT, OTHER_CHAT = 6001, 6002
PER_CHAT = 5.0  # a second; Telegram's is about 1, which would make this test take 20 s


async def test_twenty_quick_status_commands_get_paced_replies_and_no_429(
    short_tmp: Path, suite: SimulatorSuite
) -> None:
    daemon = await start(short_tmp, suite, rate_per_chat=PER_CHAT)
    suite.telegram.limit_rate(rate_global=30.0, rate_per_chat=PER_CHAT)
    try:
        began = time.monotonic()
        for _ in range(20):
            suite.telegram.user_sends(CHAT, "/status")

        async def all_answered() -> bool:
            return len(chat_texts(suite, CHAT)) >= 20

        await eventually(all_answered, timeout=15)
        took = time.monotonic() - began
    finally:
        await stop_daemon(daemon)
    assert suite.telegram.flood is not None and suite.telegram.flood.refusals == 0
    assert chat_texts(suite, CHAT) == [chat_texts(suite, CHAT)[0]] * 20  # every reply, none an apology
    assert "not linked to anyone yet" in chat_texts(suite, CHAT)[0]
    assert took >= 19 / PER_CHAT * 0.9  # the first goes at once, then one every 1/PER_CHAT s
    print(f"\n20 replies to one chat in {took:.2f} s, 0 x 429")


async def test_replies_and_notifications_to_one_chat_share_its_budget(
    short_tmp: Path, suite: SimulatorSuite
) -> None:
    daemon = await start(short_tmp, suite, rate_per_chat=PER_CHAT)
    suite.telegram.limit_rate(rate_global=30.0, rate_per_chat=PER_CHAT)
    try:
        ann = (await daemon.call("recipient.add", name="Ann", telegram_chat_id=CHAT))["id"]
        ids = []
        for n in range(6):
            suite.telegram.user_sends(CHAT, "/help")
            ids.append((await daemon.call("send", recipient_id=ann, message=f"disk {n}", chain=["telegram"]))["id"])
        suite.telegram.user_sends(OTHER_CHAT, "/help")  # another chat is not held up by this one

        async def all_sent() -> bool:
            return len(chat_texts(suite, CHAT)) >= 12 and len(chat_texts(suite, OTHER_CHAT)) == 1

        await eventually(all_sent, timeout=15)
        statuses = [(await daemon.wait_final(i))["status"] for i in ids]
    finally:
        await stop_daemon(daemon)
    assert suite.telegram.flood is not None and suite.telegram.flood.refusals == 0
    assert statuses == ["delivered"] * 6
    assert sorted(t for t in chat_texts(suite, CHAT) if t.startswith("disk")) == [f"disk {n}" for n in range(6)]


async def test_a_429_on_a_reply_blocks_the_chat_and_the_reply_still_arrives(
    short_tmp: Path, suite: SimulatorSuite
) -> None:
    daemon = await start(short_tmp, suite)
    try:
        suite.telegram.faults.inject("rate_limit", count=1, retry_after=1, target=CHAT)
        began = time.monotonic()
        suite.telegram.user_sends(CHAT, "/help")

        async def answered() -> bool:
            return len(chat_texts(suite, CHAT)) == 1

        await eventually(answered, timeout=10)
        took = time.monotonic() - began
    finally:
        await stop_daemon(daemon)
    assert "/stop - pause notifications on Telegram" in chat_texts(suite, CHAT)[0]
    assert took >= 0.95  # it waited out retry_after instead of apologising at once
