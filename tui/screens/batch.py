"""One batch (a send to a group): the group, the counts by status, and each member's notification with its
status, live while any is in flight. Enter on a member opens its notification."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.console import Group
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from daemon.client import DaemonUnavailable, RemoteError
from daemon.protocol import BatchJSON
from tui.base import fnotify_app
from tui.connection import Connected, DaemonEvent
from tui.formatting import full_time, plain, shown, status_text
from tui.model import notification_id_of
from tui.widgets.banner import ConnectionBanner


def counts_text(batch: BatchJSON) -> Text:
    """``✓ delivered 2 · ⋯ sending 1``: how many of the batch's notifications are in each status."""
    parts: list[Text | str] = []
    for status, count in sorted(batch["counts"].items()):
        if parts:
            parts.append(" · ")
        parts += [status_text(status), f" {count}"]
    return Text.assemble(*parts) if parts else Text("no notifications left (pruned)", style="bright_black")


class BatchScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,backspace", "app.pop_screen", "Back", key_display="esc"),
        Binding("enter", "open", "Open notification"),
    ]

    def __init__(self, batch_id: int) -> None:
        super().__init__()
        self.batch_id = batch_id
        self.record: BatchJSON | None = None
        self.sub_title = f"batch #{batch_id}"

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionBanner()
        with Vertical(id="batch"):
            yield Static("loading…", id="batch-summary")
            yield DataTable[Any](id="batch-members", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, label in (("id", "#"), ("to", "to"), ("status", "status"), ("channel", "channel"),
                           ("tries", "try"), ("updated", "updated")):
            table.add_column(label, key=key)
        table.focus()
        self.load()

    @work(exclusive=True, group="load-batch")
    async def load(self) -> None:
        try:
            self.record = await fnotify_app(self).call("batch.show", id=self.batch_id)
        except DaemonUnavailable:
            return
        except RemoteError as exc:
            self.query_one("#batch-summary", Static).update(plain(exc, style="bold red"))
            return
        self.render_batch()

    def on_connected(self, message: Connected) -> None:
        self.load()

    def on_daemon_event(self, message: DaemonEvent) -> None:
        about = notification_id_of(message.event)
        if self.record is not None and about in {n["id"] for n in self.record["notifications"]}:
            self.load()  # one member moved on: re-read the batch (its counts and every status)

    def render_batch(self) -> None:
        b = self.record
        if b is None:
            return
        tz = fnotify_app(self).display_tz
        title = Text.assemble((f"batch #{b['batch_id']}", "bold"), " → group ", (shown(b["group"]), "bold"),
                              (f"   {len(b['notifications'])} recipient(s)", "bright_black"))
        sent = Text.assemble(("sent ", "bright_black"), full_time(b["created_at"], tz))
        self.query_one("#batch-summary", Static).update(Group(title, sent, counts_text(b)))
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for n in b["notifications"]:
            name = n["recipient_name"] if n["recipient_name"] is not None else f"#{n['recipient_id']} (removed)"
            table.add_row(Text(str(n["id"]), style="bright_black"), plain(name), status_text(n["status"]),
                          plain(n["channel"] or "-"), str(n["attempt_count"]), full_time(n["updated_at"], tz),
                          key=str(n["id"]))
        if b["notifications"]:
            table.move_cursor(row=min(row, len(b["notifications"]) - 1))

    def action_open(self) -> None:
        if self.record is None or not self.record["notifications"]:
            return
        row = self.query_one(DataTable).cursor_row
        fnotify_app(self).action_open_notification(self.record["notifications"][row]["id"])

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()
