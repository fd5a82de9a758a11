"""``FnotifyApp``: the TUI's root. Owns the daemon connection and the recipient cache, forwards
connection messages and stream events to every open screen, and holds the app-wide actions the
screens, the footer and the command palette share."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.reactive import reactive, var
from textual.screen import Screen

from daemon.client import ClientError
from daemon.protocol import visible
from tui.base import HostApp
from tui.commands import FnotifyCommands
from tui.connection import Connected, DaemonConnection, DaemonEvent, Disconnected
from tui.model import Recipient
from tui.screens.detail import NotificationDetailScreen
from tui.screens.health import HealthScreen
from tui.screens.help import HelpScreen
from tui.screens.notifications import NotificationsScreen
from tui.screens.recipient_edit import RecipientEditScreen
from tui.screens.recipients import RecipientsScreen
from tui.screens.send import SendScreen


def _utcnow() -> datetime:
    return datetime.now(UTC)


class FnotifyApp(HostApp):
    """The operator's console for one daemon, reached at ``socket_path``.

    ``tz`` and ``clock`` fix how times render (tests and snapshots pass UTC and a frozen clock);
    ``retry_initial`` / ``retry_max`` bound the reconnect backoff in seconds.
    """

    CSS_PATH = "app.tcss"
    TITLE = "failover-notify"
    COMMANDS = App.COMMANDS | {FnotifyCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark,f1", "help", "Help", key_display="?"),
    ]

    daemon_problem: reactive[str | None] = reactive(None)
    """Why the daemon is not reachable, or None while the event stream is live."""
    recipients: var[tuple[Recipient, ...]] = var((), always_update=True)
    """Every recipient, kept current from ``recipient.*`` events."""

    def __init__(self, socket_path: Path | str, *, tz: tzinfo | None = None,
                 clock: Callable[[], datetime] = _utcnow, retry_initial: float = 0.25,
                 retry_max: float = 5.0) -> None:
        super().__init__()
        self.socket_path = Path(socket_path)
        self.display_tz = tz
        self.clock = clock
        self.connection = DaemonConnection(self.socket_path, self, retry_initial=retry_initial,
                                           retry_max=retry_max)

    def get_default_screen(self) -> Screen[Any]:
        return NotificationsScreen()

    def on_mount(self) -> None:
        self.run_worker(self.connection.run_event_stream(), name="event-stream", group="connection",
                        exclusive=True)

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        """A toast. Every toast here quotes names, notification states or the daemon's errors, so
        its text is always shown as text: ``markup`` is ignored, control characters are escaped."""
        super().notify(visible(message, keep_newlines=True), title=visible(title), severity=severity,
                       timeout=timeout, markup=False)

    async def call(self, op: str, **params: Any) -> Any:
        """One daemon request (from a worker); raises DaemonUnavailable or RemoteError."""
        return await self.connection.call(op, **params)

    def recipient_name(self, recipient_id: int | None) -> str:
        for recipient in self.recipients:
            if recipient["id"] == recipient_id:
                return str(recipient["name"])
        return f"#{recipient_id}" if recipient_id is not None else "-"

    def recipient(self, recipient_id: int | None) -> Recipient | None:
        return next((r for r in self.recipients if r["id"] == recipient_id), None)

    # -- connection messages -----------------------------------------------------------------

    def on_connected(self, message: Connected) -> None:
        self.daemon_problem = None
        self.load_recipients()
        self._forward(Connected)

    def on_disconnected(self, message: Disconnected) -> None:
        self.daemon_problem = message.reason
        reason = message.reason
        self._forward(lambda: Disconnected(reason))

    def on_daemon_event(self, message: DaemonEvent) -> None:
        if message.kind.startswith("recipient."):
            self.load_recipients()
        self._forward(message.copy)

    def _forward(self, make: Callable[[], Message]) -> None:
        for screen in self.screen_stack:
            screen.post_message(make())

    @work(exclusive=True, group="recipients")
    async def load_recipients(self) -> None:
        with contextlib.suppress(ClientError):  # the banner says the daemon is away; Connected reloads
            self.recipients = tuple(await self.call("recipient.list"))

    # -- app-wide actions (footer, screens, command palette) ---------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_home(self) -> None:
        while len(self.screen_stack) > 1:
            self.pop_screen()

    def action_send(self, recipient_id: int | None = None) -> None:
        self.push_screen(SendScreen(recipient_id=recipient_id))

    def action_recipients(self) -> None:
        self.push_screen(RecipientsScreen())

    def action_add_recipient(self) -> None:
        self.push_screen(RecipientEditScreen(None))

    def action_health(self) -> None:
        self.push_screen(HealthScreen())

    def action_open_notification(self, notification_id: int) -> None:
        self.push_screen(NotificationDetailScreen(notification_id))

    def action_filter_status(self, status: str | None) -> None:
        """Show the home table narrowed to one status (None: every status)."""
        self.action_home()
        home = self.screen_stack[0]
        if isinstance(home, NotificationsScreen):
            home.set_status_filter(status)
