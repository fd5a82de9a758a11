"""Recipients: each one's addresses and Telegram state; add, edit, remove, make an opt-in link."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.coordinate import Coordinate
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from daemon.client import DaemonUnavailable, RemoteError
from tui.base import fnotify_app
from tui.formatting import plain, telegram_state_text
from tui.model import Recipient
from tui.screens.confirm import ConfirmScreen
from tui.screens.link import LinkScreen
from tui.screens.recipient_edit import RecipientEditScreen
from tui.widgets.banner import ConnectionBanner


class RecipientTable(DataTable[Any]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select_cursor", "Edit")]

    def __init__(self) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, id="recipients")

    def show(self, recipients: list[Recipient]) -> None:
        current = self.selected_id
        self.clear(columns=not self.columns)
        if not self.columns:
            for key, label in (("id", "#"), ("name", "name"), ("email", "email"), ("phone", "phone"),
                               ("telegram", "telegram"), ("opt_out", "opted out")):
                self.add_column(label, key=key)
        for r in recipients:
            self.add_row(
                Text(str(r["id"]), style="bright_black"),
                plain(r["name"], style="bold"),  # Text, not str: DataTable reads a str cell as markup
                plain(r["email"]) if r.get("email") else Text("-", style="bright_black"),
                plain(r["phone"]) if r.get("phone") else Text("-", style="bright_black"),
                telegram_state_text(r.get("telegram_state")),
                ", ".join(r.get("opt_out") or []) or Text("-", style="bright_black"),
                key=str(r["id"]),
            )
        keys = [str(r["id"]) for r in recipients]
        if current is not None and str(current) in keys:
            self.move_cursor(row=keys.index(str(current)), animate=False)

    @property
    def selected_id(self) -> int | None:
        if self.row_count == 0 or not 0 <= self.cursor_row < self.row_count:
            return None
        key = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key.value
        return int(key) if key is not None else None


class RecipientsScreen(Screen[None]):
    SUB_TITLE = "recipients"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", key_display="esc"),
        Binding("a", "add", "Add"),
        Binding("e", "edit", "Edit", show=False),
        Binding("l", "link", "Opt-in link"),
        Binding("s", "send", "Send to"),
        Binding("x,delete", "remove", "Remove"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionBanner()
        yield RecipientTable()
        yield Static(id="recipients-info")
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.app, "recipients", self._show, init=True)
        self.query_one(RecipientTable).focus()

    def _show(self, recipients: tuple[Recipient, ...]) -> None:
        self.query_one(RecipientTable).show(list(recipients))
        count = len(recipients)
        info = f"{count} recipient{'s' if count != 1 else ''}" if count else "no recipients yet: a to add one"
        self.query_one("#recipients-info", Static).update(info)

    def _selected(self) -> Recipient | None:
        return fnotify_app(self).recipient(self.query_one(RecipientTable).selected_id)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_edit()

    def action_edit(self) -> None:
        recipient = self._selected()
        if recipient is not None:
            self.app.push_screen(RecipientEditScreen(recipient))

    def action_add(self) -> None:
        self.app.push_screen(RecipientEditScreen(None))

    def action_link(self) -> None:
        recipient = self._selected()
        if recipient is not None:
            self.app.push_screen(LinkScreen(recipient))

    def action_send(self) -> None:
        recipient = self._selected()
        if recipient is not None:
            fnotify_app(self).action_send(recipient["id"])

    def action_remove(self) -> None:
        recipient = self._selected()
        if recipient is None:
            return
        question = f"Remove {recipient['name']} (#{recipient['id']})? Their past notifications stay."

        def remove_if_confirmed(yes: bool | None) -> None:
            if yes:
                self._remove(recipient)

        self.app.push_screen(ConfirmScreen(question, yes="Remove"), remove_if_confirmed)

    @work(group="recipient-remove")
    async def _remove(self, recipient: Recipient) -> None:
        try:
            await fnotify_app(self).call("recipient.remove", id=recipient["id"])
        except (DaemonUnavailable, RemoteError) as exc:
            self.notify(str(exc), title=f"cannot remove {recipient['name']}", severity="error")
        else:
            self.notify(f"{recipient['name']} removed")
