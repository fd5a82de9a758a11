"""The send form: recipient (searchable) or a group, subject, message, channel chain, priority; errors
inline. With a group chosen, the send makes one notification per member (a batch), and its batch opens.

A send carries an idempotency key tied to the form's content, so pressing send again after a
lost reply cannot deliver the same message twice; on success the new notification opens.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, Select, Static, TextArea

from daemon.client import DaemonUnavailable, RemoteError
from daemon.protocol import Priority
from tui.base import fnotify_app
from tui.connection import Connected
from tui.model import CHANNELS, TUI_KEY_PREFIX, Recipient
from tui.screens.batch import BatchScreen
from tui.screens.detail import NotificationDetailScreen
from tui.widgets.banner import ConnectionBanner
from tui.widgets.chain_editor import ChainEditor
from tui.widgets.form_errors import FieldError, clear_errors, remote_reason, show_error
from tui.widgets.recipient_picker import RecipientPicker


class SendScreen(Screen[None]):
    SUB_TITLE = "send a notification"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "send", "Send", priority=True),
        Binding("escape", "app.pop_screen", "Back", key_display="esc"),
    ]

    def __init__(self, recipient_id: int | None = None) -> None:
        super().__init__()
        self.recipient_id = recipient_id
        self.sending = False
        self._key: tuple[tuple[Any, ...], str] | None = None  # (content, idempotency key)

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionBanner()
        with VerticalScroll(id="send-form", classes="form"):
            with Horizontal(classes="form-row"):
                yield Label("To", classes="row-label")
                with Vertical(classes="row-body"):
                    yield RecipientPicker(id="recipient")
                    yield FieldError("recipient_id")
            with Horizontal(classes="form-row"):
                yield Label("Or group", classes="row-label")
                with Vertical(classes="row-body"):
                    yield Select([], prompt="none: to the recipient above", compact=True, id="group")
                    yield FieldError("group")
            with Horizontal(classes="form-row"):
                yield Label("Subject", classes="row-label")
                with Vertical(classes="row-body"):
                    yield Input(compact=True, id="subject", placeholder="optional, for email (default: first line)")
                    yield FieldError("subject")
            with Horizontal(classes="form-row"):
                yield Label("Message", classes="row-label")
                with Vertical(classes="row-body"):
                    yield TextArea(id="message", soft_wrap=True, compact=True)
                    yield FieldError("message")
            with Horizontal(classes="form-row"):
                yield Label("Chain", classes="row-label")
                with Vertical(classes="row-body"):
                    yield ChainEditor(id="chain")
                    yield Static("←/→ pick · space on/off · ⇧←/⇧→ move earlier/later", classes="hint")
                    yield FieldError("chain")
            with Horizontal(classes="form-row"):
                yield Label("Priority", classes="row-label")
                with Vertical(classes="row-body"):
                    yield Select([(str(p), str(p)) for p in Priority], value=str(Priority.NORMAL), allow_blank=False,
                                 compact=True, id="priority")
                    yield FieldError("priority")
            with Horizontal(classes="form-row"):
                yield Label("", classes="row-label")
                with Vertical(classes="row-body"):
                    yield FieldError("form")
                    with Horizontal(classes="buttons"):
                        yield Button("Send ^s", variant="primary", id="send", compact=True)
                        yield Button("Back esc", id="back", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        picker = self.query_one(RecipientPicker)
        self.watch(self.app, "recipients", lambda rs: picker.set_recipients(list(rs)), init=True)
        if self.recipient_id is not None:
            picker.select(self.recipient_id)
            self.query_one("#message", TextArea).focus()
        else:
            self.query_one("#recipient-search", Input).focus()
        self.load_channels()
        self.load_groups()

    def on_connected(self, message: Connected) -> None:
        self.load_channels()
        self.load_groups()

    @work(exclusive=True, group="send-groups")
    async def load_groups(self) -> None:
        """The groups one may send to instead of one recipient (an empty one is listed, and refused)."""
        try:
            groups = await fnotify_app(self).call("group.list")
        except (DaemonUnavailable, RemoteError):
            return
        select: Select[str] = self.query_one("#group", Select)
        chosen = select.value
        select.set_options([(f"{g['name']} ({len(g['members'])} recipients)", g["name"]) for g in groups])
        if chosen in {g["name"] for g in groups}:
            select.value = chosen

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "group":  # a group replaces the recipient: say so where the recipient is
            self.query_one(RecipientPicker).disabled = self._group() is not None

    def _group(self) -> str | None:
        value = self.query_one("#group", Select).value
        return value if isinstance(value, str) else None

    @work(exclusive=True, group="send-channels")
    async def load_channels(self) -> None:
        """Mark the channels the daemon has switched off (sending along them only skips)."""
        try:
            status = await fnotify_app(self).call("status")
        except (DaemonUnavailable, RemoteError):
            return
        channels: dict[str, bool] = status.get("channels") or {}
        editor = self.query_one(ChainEditor)
        if editor.chain == list(CHANNELS):  # untouched: start from the daemon's default order
            editor.set_chain([c for c in channels if c in CHANNELS] or list(CHANNELS),
                             {c for c, on in channels.items() if on})
        else:
            editor.set_chain(editor.chain, {c for c, on in channels.items() if on})

    def on_recipient_picker_chosen(self, message: RecipientPicker.Chosen) -> None:
        self.query_one("#subject", Input).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "send":
            self.action_send()
        else:
            self.app.pop_screen()

    def action_send(self) -> None:
        if self.sending:
            return
        clear_errors(self)
        recipient: Recipient | None = self.query_one(RecipientPicker).selected
        group = self._group()
        chain = self.query_one(ChainEditor).chain
        if recipient is None and group is None:
            show_error(self, "recipient_id", "choose a recipient (type to search, ↓ to pick) or a group")
            return
        if not chain:
            show_error(self, "chain", "choose at least one channel (space turns one on)")
            return
        params: dict[str, Any] = {"message": self.query_one("#message", TextArea).text, "chain": chain}
        if group is not None:
            params["group"] = group
        elif recipient is not None:
            params["recipient_id"] = recipient["id"]
        subject = self.query_one("#subject", Input).value.strip()
        if subject:
            params["subject"] = subject
        priority = self.query_one("#priority", Select).value
        if priority != Priority.NORMAL:  # high and critical go through the recipient's quiet hours
            params["priority"] = str(priority)
        params["idempotency_key"] = self._idempotency_key(params)
        self.sending = True
        self.submit(params)

    def _idempotency_key(self, params: dict[str, Any]) -> str:
        content = tuple(sorted((k, str(v)) for k, v in params.items()))
        if self._key is None or self._key[0] != content:
            self._key = (content, f"{TUI_KEY_PREFIX}{uuid.uuid4()}")
        return self._key[1]

    @work(exclusive=True, group="send")
    async def submit(self, params: dict[str, Any]) -> None:
        try:
            result = await fnotify_app(self).call("send", **params)
        except RemoteError as exc:
            show_error(self, exc.field, remote_reason(exc))
            return
        except DaemonUnavailable as exc:
            show_error(self, None, f"not sent: {exc}")
            return
        finally:
            self.sending = False
        if "notifications" in result:  # a batch: the send went to a group
            if not result.get("created", True):
                self.notify(f"this was already sent as batch #{result['batch_id']}")
            self.app.switch_screen(BatchScreen(result["batch_id"]))
            return
        if not result.get("created", True):
            self.notify(f"this was already sent as #{result['id']}")
        self.app.switch_screen(NotificationDetailScreen(result["id"]))
