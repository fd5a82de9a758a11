"""Every rule of what happens next, row by row: ``daemon.failover`` is pure, so each row is a
situation (and the provider's answer) in, and exactly what the engine writes out. No sockets, no
clock, no randomness: the jitter's random number is given, like any other fact."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from daemon.core.failover import (
    AttemptResult,
    Plan,
    RetryPolicy,
    Send,
    Situation,
    StepKind,
    after_attempt,
    before_attempt,
)
from daemon.core.models import AttemptRecord, Channel, NotificationUpdate, Outcome, Recipient, Status

TELEGRAM, EMAIL, SMS = Channel.TELEGRAM, Channel.EMAIL, Channel.SMS
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SENT = NOW + timedelta(seconds=0.25)  # the provider call began (after pacing)
DONE_AT = NOW + timedelta(seconds=1)  # ... and answered
POLICY = RetryPolicy(attempts_per_channel=3, backoff_initial=2.0, backoff_max=10.0, jitter=0.2)
ANN = Recipient(1, "Ann", email="ann@example.com", phone="+14155550100", telegram_chat_id=1001)


def situation(**facts: Any) -> Situation:
    """Ann, chain telegram -> email -> sms, first try on Telegram, every channel up."""
    base = Situation(chain=(TELEGRAM, EMAIL, SMS), position=0, tries=0, now=NOW, recipient=ANN,
                     enabled=frozenset(Channel), down=frozenset(), policy=POLICY)
    return replace(base, **facts)


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def next_channel(position: int, at: datetime = NOW) -> NotificationUpdate:
    """Straight on to chain[position] by the same walk: the claim is kept."""
    return NotificationUpdate(Status.SENDING, position, 0, at, release=False)


def skipped(reason: str, update: NotificationUpdate | None = None, channel: Channel = TELEGRAM) -> Plan:
    kind = StepKind.NEXT if update is None or update.status is Status.SENDING else StepKind.EXHAUSTED
    return Plan(kind, channel, AttemptRecord(Outcome.SKIPPED, reason), update or next_channel(1), NOW)


# -- before an attempt: decided without calling a provider ---------------------------------------------

BEFORE = [
    # a channel that can serve the recipient is tried
    pytest.param({}, Send(TELEGRAM, ANN, 1, ack_requested=False), id="a channel that can serve the recipient is tried"),
    pytest.param({"tries": 2}, Send(TELEGRAM, ANN, 3, ack_requested=False), id="each attempt counts as a try"),
    pytest.param({"ack_timeout": 30.0}, Send(TELEGRAM, ANN, 1, ack_requested=True),
                 id="an ack timeout asks for the Got it button"),
    pytest.param({"down": frozenset({EMAIL})}, Send(TELEGRAM, ANN, 1, ack_requested=False),
                 id="another channel being down does not matter"),
    pytest.param({"deadline": NOW + s(1)}, Send(TELEGRAM, ANN, 1, ack_requested=False),
                 id="a deadline still ahead does not stop an attempt"),
    # a channel that cannot serve the recipient is skipped, without a try, and the next one goes at once
    pytest.param({"recipient": None}, skipped("recipient was removed"), id="skip: the recipient was removed"),
    pytest.param({"enabled": frozenset({EMAIL, SMS})}, skipped("channel disabled"), id="skip: channel disabled"),
    pytest.param({"recipient": replace(ANN, telegram_chat_id=None)}, skipped("no Telegram chat linked"),
                 id="skip: no Telegram chat linked"),
    pytest.param({"position": 1, "recipient": replace(ANN, email=None)},
                 skipped("no email address", next_channel(2), EMAIL), id="skip: no email address"),
    pytest.param({"position": 2, "recipient": replace(ANN, phone="")},
                 skipped("no phone number", NotificationUpdate(Status.FAILED, 2, 0, None), SMS),
                 id="skip: no phone number, and with no channel left the notification fails"),
    pytest.param({"recipient": replace(ANN, opt_out=frozenset({TELEGRAM}))}, skipped("opted out of Telegram"),
                 id="skip: opted out of Telegram"),
    pytest.param({"position": 1, "recipient": replace(ANN, opt_out=frozenset({EMAIL}))},
                 skipped("opted out of email", next_channel(2), EMAIL), id="skip: opted out of email"),
    pytest.param({"position": 2, "tries": 1, "recipient": replace(ANN, opt_out=frozenset({SMS}))},
                 skipped("opted out of SMS", NotificationUpdate(Status.FAILED, 2, 1, None), SMS),
                 id="skip: opted out of SMS, the last channel: failed, keeping its tries"),
    pytest.param({"recipient": replace(ANN, telegram_blocked=True)}, skipped("bot blocked by the user"),
                 id="skip: the user blocked the bot"),
    pytest.param({"down": frozenset({TELEGRAM})}, skipped("channel down"), id="skip: channel down (breaker open)"),
    pytest.param({"tries": 2, "down": frozenset({TELEGRAM})}, skipped("channel down"),
                 id="skip: a channel going down between retries hands over at once"),
    # when several reasons hold, the operator reads the most basic one
    pytest.param({"recipient": None, "enabled": frozenset()}, skipped("recipient was removed"),
                 id="order: a removed recipient before a disabled channel"),
    pytest.param({"enabled": frozenset(), "recipient": replace(ANN, telegram_chat_id=None)},
                 skipped("channel disabled"), id="order: a disabled channel before a missing address"),
    pytest.param({"recipient": replace(ANN, telegram_chat_id=None, opt_out=frozenset({TELEGRAM}))},
                 skipped("no Telegram chat linked"), id="order: a missing address before an opt-out"),
    pytest.param({"recipient": replace(ANN, opt_out=frozenset({TELEGRAM}), telegram_blocked=True),
                  "down": frozenset({TELEGRAM})},
                 skipped("opted out of Telegram"), id="order: an opt-out before a block, a block before channel down"),
    # no attempt after the deadline: the notification expires on the channel it would have tried
    pytest.param({"deadline": NOW, "position": 1, "tries": 2},
                 Plan(StepKind.EXPIRED, EMAIL,
                      AttemptRecord(Outcome.SKIPPED, "deadline 2026-01-01T12:00:00.000+00:00 passed: not tried"),
                      NotificationUpdate(Status.EXPIRED, 1, 2, None), NOW),
                 id="deadline: reached, no attempt; expired"),
    pytest.param({"deadline": NOW - s(60), "recipient": None},
                 Plan(StepKind.EXPIRED, TELEGRAM,
                      AttemptRecord(Outcome.SKIPPED, "deadline 2026-01-01T11:59:00.000+00:00 passed: not tried"),
                      NotificationUpdate(Status.EXPIRED, 0, 0, None), NOW),
                 id="deadline: checked before any skip rule"),
    # the wait for the Got it button ran out: unacknowledged, and the next channel takes over
    pytest.param({"ack_due": True, "ack_timeout": 30.0, "tries": 1},
                 Plan(StepKind.NEXT, TELEGRAM, AttemptRecord(Outcome.UNACKNOWLEDGED, "not acknowledged within 30 s"),
                      next_channel(1), NOW),
                 id="ack: not acknowledged in time escalates to the next channel"),
    pytest.param({"ack_due": True, "ack_timeout": 0.3, "deadline": NOW - s(1)},
                 Plan(StepKind.NEXT, TELEGRAM, AttemptRecord(Outcome.UNACKNOWLEDGED, "not acknowledged within 0.3 s"),
                      next_channel(1), NOW),
                 id="ack: the wait is not cut short by the deadline (the escalation after it is)"),
    pytest.param({"ack_due": True, "ack_timeout": 30.0, "chain": (TELEGRAM,), "tries": 1},
                 Plan(StepKind.EXHAUSTED, TELEGRAM,
                      AttemptRecord(Outcome.UNACKNOWLEDGED, "not acknowledged within 30 s"),
                      NotificationUpdate(Status.FAILED, 0, 1, None), NOW),
                 id="ack: with no channel left to escalate to, the notification fails"),
]


@pytest.mark.parametrize(("facts", "expected"), BEFORE)
def test_before_an_attempt(facts: dict[str, Any], expected: Plan | Send) -> None:
    assert before_attempt(situation(**facts)) == expected


# -- after an attempt: the provider's answer -----------------------------------------------------------

def retry(tries: int, delay: float, error: str, due: datetime | None = None, channel: Channel = TELEGRAM,
          position: int = 0) -> Plan:
    retry_at = DONE_AT + s(delay)
    return Plan(StepKind.RETRY, channel, AttemptRecord(Outcome.RETRY, error, None, retry_at, SENT),
                NotificationUpdate(Status.SENDING, position, tries, due or retry_at), DONE_AT, delay=delay)


def failed(error: str, update: NotificationUpdate, channel: Channel = TELEGRAM, block: bool = False) -> Plan:
    kind = StepKind.NEXT if update.status is Status.SENDING else StepKind.EXHAUSTED
    return Plan(kind, channel, AttemptRecord(Outcome.FAILED, error, None, None, SENT), update, DONE_AT,
                block_recipient=block)


def delivered(update: NotificationUpdate, channel: Channel = TELEGRAM, kind: StepKind = StepKind.DONE) -> Plan:
    return Plan(kind, channel, AttemptRecord(Outcome.DELIVERED, None, "m1", None, SENT), update, DONE_AT)


AFTER = [
    # delivered: done
    pytest.param({}, AttemptResult.delivered("m1"), delivered(NotificationUpdate(Status.DELIVERED, 0, 1, None)),
                 id="delivered: the notification is done"),
    pytest.param({"ack_timeout": 30.0}, AttemptResult.delivered("m1"),
                 delivered(NotificationUpdate(Status.SENDING, 0, 1, DONE_AT + s(30), awaiting_ack=True),
                           kind=StepKind.AWAIT_ACK),
                 id="delivered on Telegram asking for an ack: wait ack_timeout for the button"),
    pytest.param({"ack_timeout": 30.0, "chain": (EMAIL, TELEGRAM), "position": 1}, AttemptResult.delivered("m1"),
                 delivered(NotificationUpdate(Status.DELIVERED, 1, 1, None)),
                 id="delivered on Telegram with no channel left to escalate to: done, no wait"),
    pytest.param({"ack_timeout": 30.0, "position": 1}, AttemptResult.delivered("m1"),
                 delivered(NotificationUpdate(Status.DELIVERED, 1, 1, None), EMAIL),
                 id="delivered by email: done, only Telegram carries the button"),
    # transient: retried with backoff_initial x 2^(n-1), capped at backoff_max, plus up to 20% jitter
    pytest.param({}, AttemptResult.transient("503"), retry(1, 2.0, "503"), id="transient: retry after 2 s"),
    pytest.param({"tries": 1}, AttemptResult.transient("503"), retry(2, 4.0, "503"),
                 id="transient again: the backoff doubles"),
    pytest.param({"draw": 0.5}, AttemptResult.transient("503"), retry(1, 2.2, "503"),
                 id="transient: jitter adds up to 20 percent"),
    pytest.param({"tries": 8, "policy": replace(POLICY, attempts_per_channel=20)},
                 AttemptResult.transient("503"), retry(9, 10.0, "503"), id="transient: the backoff is capped"),
    pytest.param({}, AttemptResult.transient("429", retry_after=7), retry(1, 7.0, "429"),
                 id="transient: the provider's retry_after replaces the backoff"),
    pytest.param({}, AttemptResult.transient("429", retry_after=10**6), retry(1, 100.0, "429"),
                 id="transient: an absurd retry_after is capped at 10x backoff_max"),
    pytest.param({"deadline": NOW + s(5)}, AttemptResult.transient("503", retry_after=30),
                 retry(1, 30.0, "503", due=NOW + s(5)),
                 id="transient: a retry after the deadline is due at the deadline instead"),
    pytest.param({"tries": 2}, AttemptResult.transient("timeout"),
                 failed("timeout; giving up on this channel after 3 tries", next_channel(1, DONE_AT)),
                 id="transient on the last try: failed, the next channel at once"),
    pytest.param({"tries": 2, "position": 2}, AttemptResult.transient("timeout"),
                 failed("timeout; giving up on this channel after 3 tries",
                        NotificationUpdate(Status.FAILED, 2, 3, None), SMS),
                 id="transient on the last try of the last channel: the notification fails"),
    # rate limited: wait, without counting a try
    pytest.param({"tries": 2}, AttemptResult.rate_limited("429", 3.0),
                 retry(2, 3.0, "429; rate limited: not counted as a try"),
                 id="rate limited: retry after retry_after, the try given back"),
    pytest.param({}, AttemptResult.rate_limited("429", None), retry(0, 2.0, "429; rate limited: not counted as a try"),
                 id="rate limited without retry_after: the first backoff"),
    # permanent: the next channel at once
    pytest.param({}, AttemptResult.permanent("chat not found"), failed("chat not found", next_channel(1, DONE_AT)),
                 id="permanent: failed, the next channel at once"),
    pytest.param({}, AttemptResult.permanent("bot was blocked", blocked=True),
                 failed("bot was blocked", next_channel(1, DONE_AT), block=True),
                 id="permanent, bot blocked: the recipient is marked so Telegram is skipped from now on"),
    pytest.param({"position": 2}, AttemptResult.permanent("invalid number"),
                 failed("invalid number", NotificationUpdate(Status.FAILED, 2, 1, None), SMS),
                 id="permanent on the last channel: the chain is exhausted, the notification fails"),
]


@pytest.mark.parametrize(("facts", "result", "expected"), AFTER)
def test_after_an_attempt(facts: dict[str, Any], result: AttemptResult, expected: Plan) -> None:
    draw = facts.get("draw", 0.0)  # the jitter's random number, given like a fact
    facts = {k: v for k, v in facts.items() if k != "draw"}
    assert after_attempt(situation(**facts), result, DONE_AT, SENT, draw=lambda: draw) == expected


@pytest.mark.parametrize(("result", "counts"), [
    pytest.param(AttemptResult.transient("503"), True, id="transient"),
    pytest.param(AttemptResult.permanent("550"), False, id="permanent"),
    pytest.param(AttemptResult.rate_limited("429", 1.0), False, id="rate limited"),
    pytest.param(AttemptResult.delivered("m1"), False, id="delivered"),
])
def test_only_a_transient_failure_counts_against_the_channels_breaker(result: AttemptResult, counts: bool) -> None:
    assert result.channel_failed is counts


def test_the_backoff_is_backoff_initial_doubling_up_to_backoff_max_plus_jitter() -> None:
    assert [POLICY.backoff(n, 0.0) for n in range(1, 6)] == [2.0, 4.0, 8.0, 10.0, 10.0]
    assert POLICY.backoff(1, 0.999) == pytest.approx(2.0 * 1.1998)
