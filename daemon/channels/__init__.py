"""Channel adapters: the only code that talks to Telegram, SMTP and SMS providers.

Each implements ``daemon.core.channel.ChannelAdapter``. May import ``daemon.core`` and
``daemon.config``; never the storage, APIs, runtime, bot or TUI.
"""

from __future__ import annotations

from daemon.config import Config
from daemon.core.channel import ChannelAdapter, OutgoingMessage
from daemon.core.models import Channel
from daemon.core.ratelimit import MemoryRateLimits, RateLimitStore

__all__ = ["ChannelAdapter", "OutgoingMessage", "build_channels"]


def build_channels(config: Config, rate_limits: RateLimitStore | None = None) -> dict[Channel, ChannelAdapter]:
    """An adapter for each enabled channel; a disabled channel is absent (its attempts are skipped).
    ``rate_limits``: where their pace is kept (the daemon's, shared with the other daemons on PostgreSQL,
    and kept across a reload); by default a memory of their own."""
    limits = rate_limits if rate_limits is not None else MemoryRateLimits()
    channels: dict[Channel, ChannelAdapter] = {}
    if config.telegram.enabled:
        from daemon.channels.telegram import TelegramChannel

        channels[Channel.TELEGRAM] = TelegramChannel(config.telegram, limits)
    if config.email.enabled:
        from daemon.channels.email import EmailChannel

        channels[Channel.EMAIL] = EmailChannel(config.email, limits)
    if config.sms.enabled:
        from daemon.channels.sms import SmsChannel

        channels[Channel.SMS] = SmsChannel(config.sms, limits)
    return channels
