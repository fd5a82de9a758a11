"""The Telegram bot inside the daemon: opt-in deep links, /stop and /resume, /status, the "Got it" button.

``bot.runner.TelegramBot`` runs an aiogram dispatcher on the daemon's loop; handlers call into
``daemon.api.service`` (the import contracts forbid the store, the engine and the runtime).
Importing this package imports aiogram: the daemon does so only when
``[telegram] enabled = true``.
"""

from bot.runner import TelegramBot

__all__ = ["TelegramBot"]
