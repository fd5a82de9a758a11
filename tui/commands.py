"""The command palette's provider (ctrl+p): the main actions, status filters, and "open #N"."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from tui.base import fnotify_app
from tui.model import STATUSES

PaletteCommand = tuple[str, str, Callable[[], object]]


class FnotifyCommands(Provider):
    def _commands(self) -> list[PaletteCommand]:
        app = fnotify_app(self.screen)
        commands: list[PaletteCommand] = [
            ("Send a notification", "open the send form", app.action_send),
            ("Notifications", "the live table of recent notifications (home)", app.action_home),
            ("Recipients", "list, add, edit, make a Telegram opt-in link", app.action_recipients),
            ("Add a recipient", "a new recipient with email, phone, Telegram chat", app.action_add_recipient),
            ("Channel health", "per channel over the last hour: delivered, retry, failed", app.action_health),
            ("Show every status", "clear the status filter", partial(app.action_filter_status, None)),
        ]
        commands += [(f"Show only {status}", f"filter the table to {status} notifications",
                      partial(app.action_filter_status, status)) for status in STATUSES]
        commands.append(("Help", "keys and screens", app.action_help))
        return commands

    async def discover(self) -> Hits:
        for title, help_text, command in self._commands():
            yield DiscoveryHit(title, command, help=help_text)

    async def search(self, query: str) -> Hits:
        number = query.strip().lstrip("#")
        if number.isdigit():
            app = fnotify_app(self.screen)
            yield Hit(1.0, f"Open notification #{number}", partial(app.action_open_notification, int(number)),
                      help="its text and attempt timeline")
        matcher = self.matcher(query)
        for title, help_text, command in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), command, help=help_text)
