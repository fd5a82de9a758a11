"""Channel adapters: the only code that talks to Telegram, SMTP and SMS providers.

Each implements ``daemon.core.channel.ChannelAdapter``. May import ``daemon.core`` and
``daemon.config``; never the storage, APIs, runtime, bot or TUI.
"""

from __future__ import annotations

from daemon.config import Config
from daemon.core.channel import ChannelAdapter, OutgoingMessage
from daemon.core.models import Channel

__all__ = ["ChannelAdapter", "OutgoingMessage", "build_channels"]


def build_channels(config: Config) -> dict[Channel, ChannelAdapter]:
    """An adapter for each enabled channel; a disabled channel is absent (its attempts are skipped)."""
    channels: dict[Channel, ChannelAdapter] = {}
    if config.telegram.enabled:
        from daemon.channels.telegram import TelegramChannel

        channels[Channel.TELEGRAM] = TelegramChannel(config.telegram)
    if config.email.enabled:
        from daemon.channels.email import EmailChannel

        channels[Channel.EMAIL] = EmailChannel(config.email)
    if config.sms.enabled:
        from daemon.channels.sms import SmsChannel

        channels[Channel.SMS] = SmsChannel(config.sms)
    return channels
