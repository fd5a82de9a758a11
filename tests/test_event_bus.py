"""The event bus says whether anyone listens, so a hot path can skip building an unread payload."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from daemon.core.events import EventBus


async def test_a_bus_is_listened_only_while_it_has_a_subscriber_or_a_tap() -> None:
    bus = EventBus()
    assert not bus.listened
    with bus.subscribe():
        assert bus.listened
    assert not bus.listened
    seen: list[str] = []

    def tap(kind: str, data: Mapping[str, Any]) -> None:
        seen.append(kind)

    bus.tap(tap)
    assert bus.listened
    bus.publish("daemon.paused", {"paused": True})
    assert seen == ["daemon.paused"]
