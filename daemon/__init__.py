"""failover-notify: a self-hosted notification daemon that fails over Telegram -> email -> SMS."""

__version__ = "0.1.0"
