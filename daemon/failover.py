"""The failover decision, as a pure function: no I/O, no clock, no randomness of its own.

Given where a notification stands in its chain and how the last attempt went, ``decide`` says
what the attempt is recorded as and what happens next: done, retry the same channel after a
delay, move to the next channel now, or give up because the chain is exhausted.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from daemon.models import Outcome

RATE_LIMITED_NOTE = "rate limited: not counted as a try"
"""Ends the error of an attempt refused by the provider's flood control (documented in protocol.md)."""


class ResultKind(StrEnum):
    DELIVERED = "delivered"
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"
    RATE_LIMITED = "rate_limited"  # the provider's flood control: wait, without counting a try


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What an adapter call came to, before policy is applied."""

    kind: ResultKind
    error: str | None = None
    provider_message_id: str | None = None
    retry_after: float | None = None  # the provider's own wait, when it gave one

    @classmethod
    def delivered(cls, provider_message_id: str | None) -> AttemptResult:
        return cls(ResultKind.DELIVERED, provider_message_id=provider_message_id)

    @classmethod
    def transient(cls, error: str, retry_after: float | None = None) -> AttemptResult:
        return cls(ResultKind.TRANSIENT, error=error, retry_after=retry_after)

    @classmethod
    def rate_limited(cls, error: str, retry_after: float | None) -> AttemptResult:
        return cls(ResultKind.RATE_LIMITED, error=error, retry_after=retry_after)

    @classmethod
    def permanent(cls, error: str) -> AttemptResult:
        return cls(ResultKind.PERMANENT, error=error)

    @classmethod
    def skipped(cls, reason: str) -> AttemptResult:
        return cls(ResultKind.SKIPPED, error=reason)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts_per_channel: int = 3
    backoff_initial: float = 2.0
    backoff_max: float = 60.0
    jitter: float = 0.2  # up to +20% on each wait, so retries of a burst do not land together

    def backoff(self, tries: int, rng: random.Random) -> float:
        """Wait before try number ``tries + 1`` on the same channel (``tries`` >= 1 made so far)."""
        base = min(self.backoff_max, self.backoff_initial * 2.0 ** (tries - 1))
        return base * (1 + rng.uniform(0, self.jitter))

    def honour(self, retry_after: float) -> float:
        """A provider's retry_after is obeyed, within reason (10x backoff_max)."""
        return float(max(0.0, min(retry_after, max(self.backoff_max, 1.0) * 10)))


class StepKind(StrEnum):
    DONE = "done"  # delivered: the notification is final
    RETRY = "retry"  # same channel after ``delay`` seconds
    NEXT = "next"  # next channel, now
    EXHAUSTED = "exhausted"  # no channel left: the notification failed
    EXPIRED = "expired"  # the deadline passed before the next attempt: the notification expired


@dataclass(frozen=True, slots=True)
class Step:
    kind: StepKind
    outcome: Outcome  # what the attempt just made is recorded as
    position: int  # chain position after this step
    tries: int  # tries on that position after this step
    delay: float = 0.0
    note: str | None = None  # appended to the error text (e.g. "giving up after 3 tries")


def decide(
    chain_length: int,
    position: int,
    tries: int,
    result: AttemptResult,
    policy: RetryPolicy,
    rng: random.Random,
) -> Step:
    """Next step for a notification at ``position`` that has made ``tries`` attempts there
    (including the one that produced ``result``; 0 for a skip)."""
    if result.kind is ResultKind.DELIVERED:
        return Step(StepKind.DONE, Outcome.DELIVERED, position, tries)
    if result.kind is ResultKind.RATE_LIMITED:
        # the message was refused unread for sending too fast, not for anything about it: the try is
        # given back, so pacing trouble never fails a notification over (its deadline still bounds it)
        delay = policy.honour(result.retry_after) if result.retry_after is not None else policy.backoff(1, rng)
        return Step(StepKind.RETRY, Outcome.RETRY, position, max(tries - 1, 0), delay=delay,
                    note=RATE_LIMITED_NOTE)
    if result.kind in (ResultKind.TRANSIENT, ResultKind.INTERRUPTED) and tries < policy.attempts_per_channel:
        delay = policy.honour(result.retry_after) if result.retry_after is not None else policy.backoff(tries, rng)
        outcome = Outcome.INTERRUPTED if result.kind is ResultKind.INTERRUPTED else Outcome.RETRY
        return Step(StepKind.RETRY, outcome, position, tries, delay=delay)
    outcome = {
        ResultKind.SKIPPED: Outcome.SKIPPED,
        ResultKind.INTERRUPTED: Outcome.INTERRUPTED,
    }.get(result.kind, Outcome.FAILED)
    note = f"giving up on this channel after {tries} tries" if result.kind is ResultKind.TRANSIENT else None
    if position + 1 < chain_length:
        return Step(StepKind.NEXT, outcome, position + 1, 0, note=note)
    return Step(StepKind.EXHAUSTED, outcome, position, tries, note=note)


def expiry(deadline: datetime | None, now: datetime, position: int, tries: int) -> Step | None:
    """The step that ends a notification instead of its next attempt when ``deadline`` has passed
    (recorded as a ``skipped`` attempt on the channel that would have been tried), or None."""
    if deadline is None or now < deadline:
        return None
    return Step(StepKind.EXPIRED, Outcome.SKIPPED, position, tries)


def clamp_to_deadline(when: datetime, deadline: datetime | None) -> datetime:
    """A retry planned after the deadline comes due at the deadline instead, so the notification
    turns ``expired`` on time rather than sitting ``sending`` until a retry that will never be made."""
    return when if deadline is None or when <= deadline else deadline
