"""Failure injection shared by every simulator.

A simulator holds a ``FaultPlan``; before serving a request it asks ``plan.take(target)``
for the first matching rule, which is consumed once per request until its count runs out.

Kinds (each simulator maps them onto its own protocol):
    down        drop the connection without an answer (a network error for the client)
    error       a server error (HTTP 500 / SMTP 451): transient
    rate_limit  HTTP 429 with retry_after (SMTP 421): transient
    permanent   the provider refuses this message for good (Telegram 400 chat not found,
                SMS 400 invalid number, SMTP 550)
    blocked     Telegram only: 403 bot was blocked by the user
    latency     delay the answer by ``delay`` seconds, then serve normally
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Literal

FaultKind = Literal["down", "error", "rate_limit", "permanent", "blocked", "latency"]
FAULT_KINDS: tuple[str, ...] = ("down", "error", "rate_limit", "permanent", "blocked", "latency")


@dataclass(slots=True)
class FaultRule:
    kind: FaultKind
    count: int | None = None  # None: until cleared
    target: str | None = None  # only requests for this chat id / address / phone (as a string)
    retry_after: float = 1.0  # for rate_limit
    delay: float = 0.0  # for latency
    probability: float = 1.0  # < 1: fire at random (chaos tests)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "count": self.count,
            "target": self.target,
            "retry_after": self.retry_after,
            "delay": self.delay,
            "probability": self.probability,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultRule:
        kind = data.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind: must be one of {', '.join(FAULT_KINDS)}")
        count = data.get("count")
        if count is not None and (not isinstance(count, int) or count < 1):
            raise ValueError("count: must be a positive integer or null")
        target = data.get("target")
        return cls(
            kind=kind,
            count=count,
            target=str(target) if target is not None else None,
            retry_after=float(data.get("retry_after", 1.0)),
            delay=float(data.get("delay", 0.0)),
            probability=float(data.get("probability", 1.0)),
        )


class FaultPlan:
    """An ordered list of rules; thread-safe because the SMTP simulator runs in its own thread."""

    def __init__(self, rng: Any = None) -> None:
        import random

        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._rng = rng or random.Random()

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def inject(self, kind: FaultKind, count: int | None = None, target: object = None, **kw: Any) -> FaultRule:
        rule = FaultRule(kind=kind, count=count, target=str(target) if target is not None else None, **kw)
        self.add(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def take(self, target: object = None) -> FaultRule | None:
        """The rule that applies to this request (consuming one use of it), or None."""
        key = str(target) if target is not None else None
        with self._lock:
            for rule in self._rules:
                if rule.target is not None and rule.target != key:
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                if rule.count is not None:
                    rule.count -= 1
                    if rule.count <= 0:
                        self._rules.remove(rule)
                return rule
        return None
