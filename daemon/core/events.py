"""In-process publish/subscribe of live events for the socket API's ``subscribe`` stream.

Publishing never blocks the engine: each subscriber has a bounded queue, and a subscriber too
slow to keep up is dropped (it receives an ``overflow`` event and its stream ends) rather than
letting memory grow.

In-process listeners (the Prometheus metrics) ``tap`` the bus instead: they are called synchronously
on every publish, with or without subscribers, and must be quick and must not raise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal, cast, overload

from daemon.core.models import utcnow
from daemon.protocol import (
    OVERFLOW,
    AttemptJSON,
    AttemptStartedData,
    AwaitingAckData,
    AwaitingReceiptData,
    BreakerEventData,
    Event,
    LinkCreatedData,
    NotificationStatusData,
    NotificationSummaryJSON,
    OverflowEvent,
    PausedData,
    RecipientChangedKind,
    RecipientJSON,
    RecipientRemovedData,
    RecipientTelegramData,
    RecipientTelegramKind,
    SmsBudgetData,
)

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000
Tap = Callable[[str, Mapping[str, Any]], None]
"""An in-process listener of every event (the metrics): called in the publisher's call."""


class EventBus:
    def __init__(self, queue_size: int = QUEUE_SIZE, clock: Callable[[], datetime] = utcnow) -> None:
        self._subscribers: set[asyncio.Queue[Event | None]] = set()
        self._queue_size = queue_size
        self._clock = clock
        self._taps: list[Tap] = []

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    @property
    def listened(self) -> bool:
        """Whether an event published now reaches anyone (a tap or a subscriber): a hot path may skip
        building a payload nobody reads (``notification.created`` on every send)."""
        return bool(self._taps or self._subscribers)

    def tap(self, listener: Tap) -> None:
        """Call ``listener(kind, data)`` on every event from now on, in the publisher's call."""
        self._taps.append(listener)

    # one signature per event kind: mypy checks that each producer sends the payload the protocol
    # module promises for that kind (docs/protocol.md lists them)
    @overload
    def publish(self, kind: Literal["notification.created"], data: NotificationSummaryJSON) -> None: ...
    @overload
    def publish(self, kind: Literal["notification.status"], data: NotificationStatusData) -> None: ...
    @overload
    def publish(self, kind: Literal["notification.awaiting_ack"], data: AwaitingAckData) -> None: ...
    @overload
    def publish(self, kind: Literal["notification.awaiting_receipt"], data: AwaitingReceiptData) -> None: ...
    @overload
    def publish(self, kind: Literal["sms.budget"], data: SmsBudgetData) -> None: ...
    @overload
    def publish(self, kind: Literal["attempt.started"], data: AttemptStartedData) -> None: ...
    @overload
    def publish(self, kind: Literal["attempt.finished"], data: AttemptJSON) -> None: ...
    @overload
    def publish(self, kind: Literal["channel.breaker"], data: BreakerEventData) -> None: ...
    @overload
    def publish(self, kind: RecipientChangedKind, data: RecipientJSON) -> None: ...
    @overload
    def publish(self, kind: Literal["recipient.removed"], data: RecipientRemovedData) -> None: ...
    @overload
    def publish(self, kind: Literal["recipient.link_created"], data: LinkCreatedData) -> None: ...
    @overload
    def publish(self, kind: RecipientTelegramKind, data: RecipientTelegramData) -> None: ...
    @overload
    def publish(self, kind: Literal["daemon.paused"], data: PausedData) -> None: ...

    def publish(self, kind: str, data: Mapping[str, Any]) -> None:
        for listener in self._taps:
            try:
                listener(kind, data)
            except Exception:  # a metrics bug must never break the delivery that published the event
                log.exception("an event listener failed on %s", kind)
        self.relay(kind, data)

    def relay(self, kind: str, data: Mapping[str, Any]) -> None:
        """Stream an event another daemon of the cluster caused to the subscribers only: the taps (this
        daemon's metrics) count what this daemon does, or a cluster's totals would be counted twice."""
        if not self._subscribers:
            return
        # the overloads above pair each kind with its payload; this is where the pair becomes one Event
        event = cast(Event, {"event": kind, "at": self._clock().isoformat(timespec="milliseconds"), "data": data})
        for queue in list(self._subscribers):
            if queue.qsize() < self._queue_size:
                queue.put_nowait(event)
                continue
            log.warning("dropping a subscriber that fell %d events behind", self._queue_size)
            self._subscribers.discard(queue)
            overflow: OverflowEvent = {"event": OVERFLOW, "data": {"reason": "subscriber too slow"}}
            queue.put_nowait(overflow)
            queue.put_nowait(None)

    def subscribe(self) -> Subscription:
        """A new stream of every event from now on; close it when done (or use ``with``)."""
        subscription = Subscription(self)
        self._subscribers.add(subscription.queue)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription.queue)

    def close(self) -> None:
        """End every stream (daemon shutdown)."""
        for queue in list(self._subscribers):
            queue.put_nowait(None)
        self._subscribers.clear()


class Subscription:
    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()  # bounded by EventBus.publish

    async def get(self) -> Event | None:
        """The next event, or None once the stream has ended."""
        return await self.queue.get()

    def close(self) -> None:
        self.bus.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
