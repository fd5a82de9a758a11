"""A circuit breaker per channel, as a pure state machine on an injected clock.

    closed     attempts go through; ``threshold`` consecutive transient failures open it
    open       attempts are refused at once ("channel down": the engine records them ``skipped``
               and fails over) until ``cooldown`` seconds have passed
    half_open  the cooldown is over: exactly one attempt (the probe) goes through; success closes
               the breaker, a transient failure opens it for another cooldown

Only transient failures count: a permanent refusal (chat not found, invalid number) or a 429 is
the provider answering, so it counts as the channel working. A probe whose outcome never comes
back (the attempt was cancelled) is given up after another cooldown, so the breaker cannot stick.
State lives in memory: a restarted daemon starts with every breaker closed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from daemon.protocol import BreakerJSON


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    threshold: int = 5  # consecutive transient failures that open the breaker; 0 disables it
    cooldown: float = 30.0  # seconds a breaker stays open before one probe is let through


class CircuitBreaker:
    """One channel's breaker. ``allows()`` (a question) and ``begin()`` before an attempt;
    ``success()`` / ``failure()`` after it. ``clock`` is monotonic seconds (injected in tests)."""

    def __init__(self, settings: BreakerSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.failures = 0  # consecutive transient failures
        self._opened_at: float | None = None  # None: closed
        self._probe_since: float | None = None  # a half-open probe is in flight since then

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self.clock() - self._opened_at < self.settings.cooldown:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def allows(self) -> bool:
        """Would an attempt go through now? Changes nothing: the failover decision reads this as a
        fact, and only an attempt actually made claims the half-open probe (``begin``)."""
        state = self.state
        if state is BreakerState.HALF_OPEN:
            # the probe is still out, unless it has been out for a whole cooldown (given up)
            return self._probe_since is None or self.clock() - self._probe_since >= self.settings.cooldown
        return state is BreakerState.CLOSED

    def begin(self) -> None:
        """An attempt starts now. In half-open state it is the probe: others are refused until it reports."""
        if self.state is BreakerState.HALF_OPEN:
            self._probe_since = self.clock()

    def success(self) -> None:
        """The provider answered (delivered, or refused this one message for good): the channel works."""
        self.failures = 0
        self._opened_at = self._probe_since = None

    def failure(self) -> None:
        """A transient failure (network, 5xx, timeout)."""
        self.failures += 1
        probing = self._probe_since is not None
        if probing or (self.settings.threshold > 0 and self.failures >= self.settings.threshold):
            self._opened_at = self.clock()
            self._probe_since = None

    def to_json(self) -> BreakerJSON:
        """For the socket API's ``health``: the state, the failure streak and seconds until a probe."""
        state = self.state
        reopens = None
        if state is BreakerState.OPEN and self._opened_at is not None:
            reopens = round(self._opened_at + self.settings.cooldown - self.clock(), 1)
        return {"state": str(state), "consecutive_failures": self.failures, "probe_in_s": reopens}
