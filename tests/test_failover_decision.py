"""The failover decision is a pure function: tested without sockets or clocks."""

import random

from daemon.core.failover import AttemptResult, RetryPolicy, StepKind, decide
from daemon.core.models import Outcome

POLICY = RetryPolicy(attempts_per_channel=3, backoff_initial=2.0, backoff_max=10.0, jitter=0.2)


def rng() -> random.Random:
    return random.Random(7)


def test_delivery_ends_the_chain() -> None:
    step = decide(3, 0, 1, AttemptResult.delivered("m1"), POLICY, rng())
    assert step.kind is StepKind.DONE and step.outcome is Outcome.DELIVERED


def test_transient_error_retries_the_same_channel_with_growing_backoff() -> None:
    waits = [decide(3, 1, tries, AttemptResult.transient("503"), POLICY, rng()) for tries in (1, 2)]
    assert [s.kind for s in waits] == [StepKind.RETRY, StepKind.RETRY]
    assert all(s.position == 1 and s.outcome is Outcome.RETRY for s in waits)
    assert 2.0 <= waits[0].delay <= 2.4
    assert 4.0 <= waits[1].delay <= 4.8


def test_backoff_is_capped_by_backoff_max_plus_jitter() -> None:
    assert 10.0 <= POLICY.backoff(10, rng()) <= 12.0


def test_transient_error_fails_over_after_the_last_try() -> None:
    step = decide(3, 0, 3, AttemptResult.transient("timeout"), POLICY, rng())
    assert step.kind is StepKind.NEXT and step.position == 1 and step.tries == 0
    assert step.outcome is Outcome.FAILED
    assert step.note == "giving up on this channel after 3 tries"


def test_permanent_error_fails_over_at_once() -> None:
    step = decide(3, 0, 1, AttemptResult.permanent("blocked"), POLICY, rng())
    assert step.kind is StepKind.NEXT and step.position == 1 and step.outcome is Outcome.FAILED


def test_skip_moves_on_without_counting_a_try() -> None:
    step = decide(3, 0, 0, AttemptResult.skipped("no chat"), POLICY, rng())
    assert step.kind is StepKind.NEXT and step.outcome is Outcome.SKIPPED and step.tries == 0


def test_the_last_channel_failing_exhausts_the_chain() -> None:
    step = decide(3, 2, 1, AttemptResult.permanent("550"), POLICY, rng())
    assert step.kind is StepKind.EXHAUSTED and step.outcome is Outcome.FAILED


def test_provider_retry_after_replaces_the_backoff() -> None:
    step = decide(3, 0, 1, AttemptResult.transient("429", retry_after=7), POLICY, rng())
    assert step.kind is StepKind.RETRY and step.delay == 7


def test_an_absurd_retry_after_is_capped() -> None:
    step = decide(3, 0, 1, AttemptResult.transient("429", retry_after=10**6), POLICY, rng())
    assert step.delay == 100.0  # 10 x backoff_max
