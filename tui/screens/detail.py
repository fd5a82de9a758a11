"""One notification: its full text and its attempt timeline, live while it is in flight.

Actions: cancel (while not final), resend (a new notification with the same recipient, text,
subject and chain), redrive (the daemon's ``retry``: a failed one walks its chain again).
"""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from daemon.client import DaemonUnavailable, RemoteError
from tui.base import fnotify_app
from tui.connection import Connected, DaemonEvent
from tui.formatting import chain_text, full_time, plain, priority_text, shown, status_text
from tui.model import REDRIVABLE_STATUSES, TUI_KEY_PREFIX, Notification, apply_event, is_final, notification_id_of
from tui.screens.batch import BatchScreen
from tui.screens.confirm import ConfirmScreen
from tui.widgets.attempt_timeline import AttemptTimeline
from tui.widgets.banner import ConnectionBanner


class NotificationDetailScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,backspace", "app.pop_screen", "Back", key_display="esc"),
        Binding("c", "cancel", "Cancel"),
        Binding("r", "resend", "Resend"),
        Binding("R", "redrive", "Redrive", key_display="R"),
        Binding("b", "batch", "Batch"),
    ]

    def __init__(self, notification_id: int) -> None:
        super().__init__()
        self.notification_id = notification_id
        self.notification: Notification | None = None
        self.sub_title = f"notification #{notification_id}"

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionBanner()
        with VerticalScroll(id="detail"):
            yield Static("loading…", id="summary")
            yield Static(id="message-text")
            yield AttemptTimeline(id="timeline")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#message-text").border_title = "message"
        self.query_one("#timeline").border_title = "attempts"
        self.watch(self.app, "recipients", lambda _: self.render_notification())
        self.query_one("#detail").focus()  # ↑/↓/pgup/pgdn scroll a long timeline
        self.load()

    @work(exclusive=True, group="load-detail")
    async def load(self) -> None:
        try:
            self.notification = await fnotify_app(self).call("show", id=self.notification_id)
        except DaemonUnavailable:
            return
        except RemoteError as exc:
            self.query_one("#summary", Static).update(plain(exc, style="bold red"))
            return
        self.render_notification()

    def on_connected(self, message: Connected) -> None:
        self.load()

    def on_daemon_event(self, message: DaemonEvent) -> None:
        about = notification_id_of(message.event)
        if self.notification is None or about != self.notification_id:
            return
        self.notification = apply_event(self.notification, message.event)
        self.render_notification()
        if message.kind == "notification.status":
            self.load()  # status events carry no updated_at, deadline...: re-read the whole record

    def render_notification(self) -> None:
        n = self.notification
        if n is None:
            return
        app = fnotify_app(self)
        tz = app.display_tz
        title = Text.assemble(
            (f"#{n['id']}", "bold"), " → ", (shown(app.recipient_name(n["recipient_id"])), "bold"),
            (f"  recipient {n['recipient_id']}", "bright_black"), "   ", status_text(n["status"]),
        )
        facts = Table.grid(padding=(0, 2))
        facts.add_column(style="bright_black", no_wrap=True)
        facts.add_column()
        facts.add_row("chain", chain_text(n.get("chain"), n.get("channel") if not is_final(n) else None))
        created, updated = full_time(n.get("created_at"), tz), full_time(n.get("updated_at"), tz)
        facts.add_row("created", f"{created}   updated {updated}")
        if n.get("subject"):
            facts.add_row("subject", plain(n["subject"]))
        key = str(n.get("idempotency_key") or "")
        if key and not key.startswith(TUI_KEY_PREFIX):  # the send form's own keys are noise here
            facts.add_row("key", plain(key))
        if n.get("batch_id") is not None:
            facts.add_row("batch", f"#{n['batch_id']}, sent to a group (b: every member's status)")
        if n.get("deadline"):
            facts.add_row("expires", full_time(n["deadline"], tz))
        if n.get("ack_timeout"):
            facts.add_row("ack", f"wanted within {n['ack_timeout']:.0f} s")
        if n.get("priority", "normal") != "normal":
            facts.add_row("priority", priority_text(n.get("priority")))
        if n.get("status") == "held" and n.get("next_attempt_at"):
            facts.add_row("held", f"until {full_time(n['next_attempt_at'], tz)} (the recipient's quiet hours)")
        self.query_one("#summary", Static).update(Group(title, facts))
        self.refresh_bindings()
        self.query_one("#message-text", Static).update(plain(n.get("text") or "", keep_newlines=True))
        self.query_one(AttemptTimeline).show(n, tz)

    # -- actions ------------------------------------------------------------------------------

    def action_cancel(self) -> None:
        n = self.notification
        if n is None:
            return
        if is_final(n):
            self.notify(f"#{n['id']} is already {n['status']}: nothing to cancel")
            return
        question = f"Cancel notification #{n['id']}? It will not be delivered."

        def cancel_if_confirmed(yes: bool | None) -> None:
            if yes:
                self._call("cancel")

        self.app.push_screen(ConfirmScreen(question), cancel_if_confirmed)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The batch key is shown only for a notification sent to a group."""
        if action == "batch":
            return self.notification is not None and self.notification.get("batch_id") is not None
        return True

    def action_batch(self) -> None:
        batch_id = self.notification.get("batch_id") if self.notification is not None else None
        if batch_id is None:
            self.notify("this notification was sent to one recipient, not to a group")
            return
        self.app.push_screen(BatchScreen(batch_id))

    def action_redrive(self) -> None:
        n = self.notification
        if n is not None and n["status"] not in REDRIVABLE_STATUSES:
            self.notify(f"only a failed or expired notification can be redriven (this one is {n['status']})")
            return
        self._call("retry")

    @work(group="detail-action")
    async def _call(self, op: str) -> None:
        try:
            result: Notification = await fnotify_app(self).call(op, id=self.notification_id)
        except (DaemonUnavailable, RemoteError) as exc:
            self.notify(str(exc), title=f"{op} refused", severity="error")
            return
        self.notification = result
        self.render_notification()
        self.notify(f"#{self.notification_id} {result['status']}")

    @work(group="detail-action")
    async def action_resend(self) -> None:
        n = self.notification
        if n is None:
            return
        params = {"recipient_id": n["recipient_id"], "message": n["text"], "chain": n["chain"]}
        if n.get("subject"):
            params["subject"] = n["subject"]
        app = fnotify_app(self)
        try:
            result = await app.call("send", **params)
        except (DaemonUnavailable, RemoteError) as exc:
            self.notify(str(exc), title="resend refused", severity="error")
            return
        self.notify(f"sent again as #{result['id']}")
        self.app.switch_screen(NotificationDetailScreen(result["id"]))
