"""The interface every channel adapter implements.

The failover engine only sees this: ``wait_turn`` for the provider's pace, and ``send`` that
returns a provider message id or raises TransientError / PermanentError. Whether a channel can
serve a recipient at all (an address, no opt-out) is decided once, in ``daemon.failover``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from daemon.core.models import Channel, Recipient


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message for one recipient on one channel."""

    notification_id: int
    recipient: Recipient
    text: str
    subject: str | None = None
    ack_requested: bool = False  # Telegram: attach the "Got it" button
    validity_period: int | None = None  # SMS: seconds the carrier may keep trying (Twilio ``ValidityPeriod``)


class ChannelAdapter(Protocol):
    name: Channel

    async def wait_turn(self, recipient: Recipient) -> None:
        """Wait until the provider's limits allow one more send to this recipient, and claim it.

        The engine calls this before it records the attempt as started, so an attempt's timing
        (and the window in which a crash can duplicate it) is the provider call alone.
        """
        ...

    async def send(self, message: OutgoingMessage) -> str | None:
        """Deliver; return the provider's message id. Raise TransientError or PermanentError."""
        ...

    async def check(self) -> str:
        """Reach the provider without sending a message; return a short description or raise ChannelError."""
        ...

    async def close(self) -> None:
        """Release clients and connections."""
        ...
