"""Add or edit a recipient in a modal form; the daemon validates, errors show under each field."""

from __future__ import annotations

from typing import Any, ClassVar, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static

from daemon.client import DaemonUnavailable, RemoteError
from tui.base import fnotify_app
from tui.formatting import plain, shown, telegram_state_text
from tui.model import CHANNELS, Recipient, changed_fields, recipient_params
from tui.widgets.form_errors import FieldError, clear_errors, remote_reason, show_error

FIELDS = (  # (field, label, placeholder)
    ("name", "Name", "required"),
    ("email", "Email", "optional"),
    ("phone", "Phone", "optional, E.164 form: + and country code"),
    ("telegram_chat_id", "Telegram", "optional chat id (or send an opt-in link: l)"),
    ("timezone", "Time zone", "IANA name, e.g. Europe/Moscow; empty: UTC"),
    ("quiet_hours", "Quiet hours", "e.g. 22:00-07:00 in that zone; empty: never quiet"),
)


class RecipientEditScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("escape", "app.pop_screen", "Cancel", key_display="esc"),
    ]

    def __init__(self, recipient: Recipient | None) -> None:
        super().__init__()
        self.recipient = recipient
        self.saving = False

    def compose(self) -> ComposeResult:
        r: dict[str, Any] = dict(self.recipient or {})
        title = "Add a recipient" if self.recipient is None else f"Edit {r['name']} (#{r['id']})"
        with VerticalScroll(classes="dialog form", id="recipient-dialog"):
            yield Static(plain(title, style="bold"), classes="dialog-title")
            for field, label, placeholder in FIELDS:
                with Horizontal(classes="field-row"):
                    yield Label(label, classes="row-label")
                    value = r.get(field)
                    # an Input hands its value to the terminal as it is: show control characters escaped
                    yield Input("" if value is None else shown(value), placeholder=placeholder, compact=True,
                                id=field)
                yield FieldError(field)
            if self.recipient is not None:
                with Horizontal(classes="field-row"):
                    yield Label("", classes="row-label")
                    yield Static(Text.assemble("telegram is ", telegram_state_text(r.get("telegram_state"))))
            with Horizontal(classes="field-row", id="opt-out-row"):
                yield Label("Opt out", classes="row-label")
                opted_out = set(r.get("opt_out") or [])
                for channel in CHANNELS:
                    yield Checkbox(channel, channel in opted_out, compact=True, id=f"opt-out-{channel}")
            yield FieldError("opt_out")
            yield FieldError("form")
            with Horizontal(classes="buttons"):
                yield Button("Save ^s", variant="primary", id="save", compact=True)
                yield Button("Cancel esc", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.focus_next()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.action_save()
        else:
            self.dismiss(None)

    def _form_params(self) -> dict[str, Any]:
        values = {field: self.query_one(f"#{field}", Input).value for field, _, _ in FIELDS}
        opt_out = [c for c in CHANNELS if self.query_one(f"#opt-out-{c}", Checkbox).value]
        params = recipient_params(values, opt_out)
        for field, _, _ in FIELDS:  # a value left as it was shown (escaped) keeps its real text
            before = cast("dict[str, Any]", self.recipient or {}).get(field)
            if isinstance(before, str) and params.get(field) == shown(before).strip():
                params[field] = before
        return params

    def action_save(self) -> None:
        if self.saving:
            return
        clear_errors(self)
        params = self._form_params()
        if self.recipient is not None:
            params = changed_fields(self.recipient, params)
            if not params:
                self.notify("nothing changed")
                self.dismiss(None)
                return
        self.saving = True
        self.save(params)

    @work(exclusive=True, group="recipient-save")
    async def save(self, params: dict[str, Any]) -> None:
        app = fnotify_app(self)
        try:
            if self.recipient is None:
                result = await app.call("recipient.add", **params)
            else:
                result = await app.call("recipient.update", id=self.recipient["id"], **params)
        except RemoteError as exc:
            show_error(self, exc.field, remote_reason(exc))
            return
        except DaemonUnavailable as exc:
            show_error(self, None, f"not saved: {exc}")
            return
        finally:
            self.saving = False
        self.notify(f"{result['name']} {'added' if self.recipient is None else 'saved'}")
        self.dismiss(None)
