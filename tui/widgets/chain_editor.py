"""Choose and order the channel chain on one line: ``[✓ telegram] → [✓ email] → [  sms]``.

←/→ pick a channel, space toggles it, shift+←/→ (or [ and ]) move it earlier or later; a click
toggles. Channels the daemon has switched off are marked, since sending along them only skips.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from tui.model import CHANNELS


@dataclass(frozen=True, slots=True)
class ChainSlot:
    channel: str
    selected: bool = True
    enabled_in_daemon: bool = True


class ChainEditor(Widget, can_focus=True):
    DEFAULT_CSS = """
    ChainEditor { height: 1; width: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "move_cursor(-1)", "Prev", show=False),
        Binding("right", "move_cursor(1)", "Next", show=False),
        Binding("space", "toggle_channel", "On/off"),
        Binding("shift+left,left_square_bracket", "move_channel(-1)", "Earlier", key_display="⇧←"),
        Binding("shift+right,right_square_bracket", "move_channel(1)", "Later", key_display="⇧→"),
    ]

    slots: reactive[tuple[ChainSlot, ...]] = reactive(tuple(ChainSlot(c) for c in CHANNELS))
    cursor: reactive[int] = reactive(0)

    class Changed(Message):
        def __init__(self, editor: ChainEditor, chain: list[str]) -> None:
            super().__init__()
            self.editor = editor
            self.chain = chain

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._spans: list[tuple[int, int]] = []

    @property
    def chain(self) -> list[str]:
        """The selected channels, in order."""
        return [s.channel for s in self.slots if s.selected]

    def set_chain(self, chain: list[str], enabled_in_daemon: set[str] | None = None) -> None:
        """Select ``chain`` in that order; the other channels follow, unselected."""
        enabled = set(CHANNELS) if enabled_in_daemon is None else enabled_in_daemon
        order = [c for c in chain if c in CHANNELS] + [c for c in CHANNELS if c not in chain]
        self.slots = tuple(ChainSlot(c, c in chain, c in enabled) for c in order)

    def render(self) -> Text:
        text = Text()
        self._spans = []
        for i, slot in enumerate(self.slots):
            if i:
                text.append(" → ", style="bright_black")
            start = len(text)
            mark = "✓" if slot.selected else " "
            style = "bold" if slot.selected else "bright_black strike"
            if i == self.cursor:
                style += " reverse" if self.has_focus else " underline"
            text.append(f"[{mark} {slot.channel}]", style=style)
            if not slot.enabled_in_daemon:
                text.append(" off", style="yellow")
            self._spans.append((start, len(text)))
        return text

    def _changed(self, slots: tuple[ChainSlot, ...], cursor: int) -> None:
        self.slots = slots
        self.cursor = cursor
        self.post_message(self.Changed(self, self.chain))

    def action_move_cursor(self, step: int) -> None:
        self.cursor = (self.cursor + step) % len(self.slots)

    def action_toggle_channel(self) -> None:
        slots = list(self.slots)
        slots[self.cursor] = replace(slots[self.cursor], selected=not slots[self.cursor].selected)
        self._changed(tuple(slots), self.cursor)

    def action_move_channel(self, step: int) -> None:
        target = self.cursor + step
        if not 0 <= target < len(self.slots):
            return
        slots = list(self.slots)
        slots[self.cursor], slots[target] = slots[target], slots[self.cursor]
        self._changed(tuple(slots), target)

    def on_click(self, event: events.Click) -> None:
        for i, (start, end) in enumerate(self._spans):
            if start <= event.x < end:
                self.cursor = i
                self.action_toggle_channel()
                return

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
