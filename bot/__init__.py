"""The Telegram bot inside the daemon: opt-in deep links, /stop and /resume, /status, the "Got it" button.

``bot.runner.TelegramBot`` runs an aiogram dispatcher on the daemon's loop; handlers call into
``daemon.api.service`` (the import contracts forbid the store, the engine and the runtime).
Importing ``bot.runner`` imports aiogram (seconds, ~130 MB): the daemon does so only when
``[telegram] enabled = true``, after it is ready, in the background. This package itself, and
``bot.links``, import no aiogram.
"""
