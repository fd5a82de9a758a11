"""A searchable recipient picker: type to narrow, ↓ into the list, the highlighted one is chosen."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from tui.formatting import plain, shown
from tui.model import Recipient, reachable_channels, recipient_matches


def recipient_prompt(recipient: Recipient) -> Text:
    text = plain(recipient["name"], style="bold")
    details = [shown(recipient.get(k)) for k in ("email", "phone") if recipient.get(k)]
    if recipient.get("telegram_chat_id") is not None:
        details.append(f"telegram {recipient.get('telegram_state', '')}".strip())
    text.append(f"  #{recipient['id']}  " + " · ".join(details), style="bright_black")
    return text


def reachability(recipient: Recipient | None) -> Text:
    if recipient is None:
        return Text("no recipient chosen", style="bright_black")
    channels = reachable_channels(recipient)
    if not channels:
        return plain(f"⚠ {recipient['name']} has no reachable channel: every attempt would be skipped",
                     style="yellow")
    return Text.assemble("→ ", (shown(recipient["name"]), "bold"), " reachable by ", ", ".join(channels))


class RecipientPicker(Vertical):
    DEFAULT_CSS = """
    RecipientPicker { height: auto; }
    RecipientPicker > OptionList { height: 4; border: none; padding: 0; }
    RecipientPicker > #recipient-summary { height: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("down", "focus_list", "Choose", show=False)]

    class Changed(Message):
        """The chosen recipient changed (None: nothing matches)."""

        def __init__(self, picker: RecipientPicker, recipient: Recipient | None) -> None:
            super().__init__()
            self.picker = picker
            self.recipient = recipient

    class Chosen(Message):
        """Enter on the search or the list: the form moves on to its next field."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._recipients: list[Recipient] = []
        self._shown: list[Recipient] = []
        self._wanted_id: int | None = None

    def compose(self) -> ComposeResult:
        yield Input(placeholder="search recipients: name, email, phone, id…", compact=True,
                    id="recipient-search")
        yield OptionList(id="recipient-options")
        yield Static(reachability(None), id="recipient-summary")

    @property
    def selected(self) -> Recipient | None:
        options = self.query_one(OptionList)
        index = options.highlighted
        return self._shown[index] if index is not None and index < len(self._shown) else None

    def set_recipients(self, recipients: list[Recipient]) -> None:
        """New data from the daemon; keeps the current choice when it still exists."""
        current = self.selected
        if current is not None and self._wanted_id is None:
            self._wanted_id = current["id"]
        self._recipients = sorted(recipients, key=lambda r: (str(r["name"]).lower(), r["id"]))
        self._refilter()

    def select(self, recipient_id: int) -> None:
        self._wanted_id = recipient_id
        self._refilter()

    def _refilter(self) -> None:
        query = self.query_one(Input).value
        self._shown = [r for r in self._recipients if recipient_matches(r, query)]
        options = self.query_one(OptionList)
        options.clear_options()
        options.add_options([Option(recipient_prompt(r), id=str(r["id"])) for r in self._shown])
        if self._shown:
            ids = [r["id"] for r in self._shown]
            options.highlighted = ids.index(self._wanted_id) if self._wanted_id in ids else 0
        self._announce()

    def _announce(self) -> None:
        recipient = self.selected
        self.query_one("#recipient-summary", Static).update(reachability(recipient))
        self.post_message(self.Changed(self, recipient))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._wanted_id = None
        self._refilter()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Chosen())

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        self._announce()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.post_message(self.Chosen())

    def action_focus_list(self) -> None:
        self.query_one(OptionList).focus()
