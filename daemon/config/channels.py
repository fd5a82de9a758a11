"""The channel sections: ``[telegram]``, ``[email]``, ``[sms]``."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from daemon.config.base import MAX_LINK_TTL, MAX_TIMEOUT, Section, split_listen
from daemon.core.sms_caps import DEFAULT_RECIPIENT_LIMITS, parse_limit


class TelegramConfig(Section):
    enabled: bool = False
    token: SecretStr | None = None
    api_base: str = "https://api.telegram.org"
    """Bot API server; point it at a local Bot API server or the simulator."""
    mode: Literal["polling", "webhook"] = "polling"
    """How the in-daemon bot receives updates: long polling (no inbound port) or a webhook."""
    webhook_url: str | None = None
    """webhook mode: the public https URL Telegram posts to (its path is served on webhook_listen)."""
    webhook_listen: str = "127.0.0.1:8443"
    """webhook mode: ``host:port`` the daemon listens on, behind a TLS-terminating reverse proxy."""
    webhook_secret: SecretStr | None = None
    """webhook mode: required; Telegram sends it in X-Telegram-Bot-Api-Secret-Token, anything else is refused."""
    link_ttl: float = Field(default=86_400, gt=0, le=MAX_LINK_TTL)
    """Seconds an opt-in deep link stays valid (at most a year)."""
    timeout: float = Field(default=10.0, gt=0, le=MAX_TIMEOUT)
    rate_global: float = Field(default=30.0, gt=0, le=10_000)
    """Messages a second the bot sends at most, over all chats (Telegram allows about 30)."""
    rate_per_chat: float = Field(default=1.0, gt=0, le=1_000)
    """Messages a second to one chat at most (Telegram allows about 1; groups 20 a minute)."""
    max_parts: int = Field(default=4, ge=1, le=100)
    """A text over Telegram's 4096 characters goes out split on line boundaries into up to this many
    messages; a longer one is refused for Telegram (permanent: it fails over to the next channel)."""

    @model_validator(mode="after")
    def _token_when_enabled(self) -> TelegramConfig:
        if self.enabled and (self.token is None or not self.token.get_secret_value()):
            raise ValueError("token: required when [telegram] enabled = true (or set FNOTIFY_TELEGRAM_TOKEN)")
        return self

    @model_validator(mode="after")
    def _webhook_settings(self) -> TelegramConfig:
        if not self.enabled or self.mode != "webhook":
            return self
        if not self.webhook_url or not self.webhook_url.startswith("https://"):
            raise ValueError('webhook_url: an https:// URL is required for mode = "webhook"')
        secret = self.webhook_secret.get_secret_value() if self.webhook_secret is not None else ""
        # Telegram's own rule for secret_token; without one anybody could post forged updates
        if not re.fullmatch(r"[A-Za-z0-9_-]{16,256}", secret):
            raise ValueError('webhook_secret: required for mode = "webhook": 16 to 256 characters of A-Z a-z 0-9 _ -')
        split_listen(self.webhook_listen)
        return self


class EmailConfig(Section):
    enabled: bool = False
    host: str = "localhost"
    port: int = Field(default=25, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "none"
    username: str | None = None
    password: SecretStr | None = None
    sender: str = "failover-notify@localhost"
    timeout: float = Field(default=10.0, gt=0, le=MAX_TIMEOUT)
    pool_size: int = Field(default=4, ge=1, le=64)
    """SMTP connections kept open and reused: also the most messages in flight at once."""
    rate: float | None = Field(default=None, gt=0, le=10_000)
    """Most messages per second to the relay (unset: no limit); providers such as SES or Gmail cap it."""


class SmsConfig(Section):
    enabled: bool = False
    provider: Literal["twilio", "webhook"] = "twilio"
    base_url: str = "https://api.twilio.com"
    account_sid: str | None = None
    auth_token: SecretStr | None = None
    sender: str | None = None
    webhook_url: str | None = None
    timeout: float = Field(default=10.0, gt=0, le=MAX_TIMEOUT)
    concurrency: int = Field(default=10, ge=1, le=256)
    """Most requests in flight to the provider at once (connections are reused)."""
    rate: float | None = Field(default=None, gt=0, le=10_000)
    """Most messages per second to the provider (unset: no limit; Twilio queues above ~1/s per number)."""
    max_segments: int = Field(default=10, ge=1, le=255)
    """Longest text sent by SMS, in segments (160 GSM-7 / 70 UCS-2 characters for one, 153 / 67 each
    when split); a longer one is refused for SMS (permanent: it fails over, or the chain ends)."""
    receipts: Literal["callback", "poll", "off"] = "off"
    """Wait for the carrier's delivery receipt before an SMS counts as delivered (Twilio only):
    ``callback`` (Twilio posts to ``status_callback_url``), ``poll`` (the daemon asks Twilio), ``off``."""
    status_callback_url: str | None = None
    """The public URL Twilio posts status changes to; the HTTP listener serves its path."""
    receipt_timeout: float = Field(default=600.0, gt=0, le=86_400)
    """Seconds to wait for a final receipt; after that the SMS counts as delivered, with a note."""
    recipient_limits: list[str] = Field(default_factory=lambda: list(DEFAULT_RECIPIENT_LIMITS))
    """Most SMS per recipient in sliding windows ("5/15m" = 5 messages per 15 minutes); [] turns them off."""
    daily_budget: int | None = Field(default=None, ge=1, le=100_000_000)
    """Most SMS segments per UTC day, all daemons together (unset: no budget); a warning at 80 %."""

    @field_validator("recipient_limits")
    @classmethod
    def _limits(cls, value: list[str]) -> list[str]:
        return [parse_limit(text).text for text in value]

    @field_validator("status_callback_url")
    @classmethod
    def _callback_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+/\S*$", value):
            raise ValueError("must be an absolute http(s) URL with a path, e.g. https://host/api/v1/twilio/status")
        return value

    @model_validator(mode="after")
    def _provider_settings(self) -> SmsConfig:
        if not self.enabled:
            return self
        if self.receipts != "off" and self.provider != "twilio":
            raise ValueError('receipts: needs provider = "twilio"')
        if self.receipts == "callback" and not self.status_callback_url:
            raise ValueError('status_callback_url: required for receipts = "callback"')
        if self.provider == "twilio":
            missing = [k for k in ("account_sid", "auth_token", "sender") if not getattr(self, k)]
            if missing:
                raise ValueError(f"{', '.join(missing)}: required for provider = \"twilio\"")
        elif not self.webhook_url:
            raise ValueError('webhook_url: required for provider = "webhook"')
        return self
