"""The home screen's table: one row per notification, columns sized to the terminal's width.

Rows are rebuilt only when the set or order of notifications changes; a status change updates
cells in place, so the cursor and the scroll position stay where the operator left them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.widgets import DataTable

from tui.formatting import first_line, plain, priority_text, short_time, status_text
from tui.model import Notification

WIDE = 100  # from this width on, the table also shows the notification id


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    width: int


def plan_columns(total_width: int, notifications: Sequence[Mapping[str, Any]], names: list[str]) -> list[Column]:
    """Fixed columns first; the message takes whatever is left (at least 12 cells)."""
    all_today = all(len(n.get("_time", "")) <= 8 for n in notifications)
    columns = [Column("time", "time", 8 if all_today else 11)]
    if total_width >= WIDE:
        columns.append(Column("id", "#", max(2, len(str(max((n["id"] for n in notifications), default=1))))))
    to_width = min(16 if total_width >= WIDE else 10, max([len(n) for n in names] + [2]))
    columns += [Column("to", "to", to_width), Column("channel", "channel", 8),
                Column("status", "status", 14), Column("priority", "prio", 4), Column("tries", "try", 3)]
    used = sum(c.width + 2 for c in columns) + 2 + 2  # cell padding, message padding, scrollbar
    columns.append(Column("message", "message", max(12, total_width - used)))
    return columns


class NotificationTable(DataTable[Any]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "select_cursor", "Open")]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, id=id)
        self._columns_plan: list[Column] = []
        self._keys: list[str] = []
        self._cells: dict[str, tuple[Any, ...]] = {}
        self._last: tuple[list[Notification], Callable[[int], str], tzinfo | None, datetime] | None = None

    def show(self, notifications: list[Notification], name_of: Callable[[int], str], tz: tzinfo | None,
             now: datetime) -> None:
        """Display ``notifications`` (newest first)."""
        self._last = (notifications, name_of, tz, now)
        rows: list[dict[str, Any]] = [{**n, "_time": short_time(n["created_at"], tz, now)} for n in notifications]
        names = [name_of(n["recipient_id"]) for n in rows]
        plan = plan_columns(self.size.width or 80, rows, names)
        if plan != self._columns_plan:
            self.clear(columns=True)
            for column in plan:
                self.add_column(column.label, width=column.width, key=column.key)
            self._columns_plan, self._keys, self._cells = plan, [], {}
        cells = {str(n["id"]): self._cells_of(n, name, plan) for n, name in zip(rows, names, strict=True)}
        keys = [str(n["id"]) for n in rows]
        if keys == self._keys:
            self._update_changed(cells, plan)
        else:
            self._rebuild(keys, cells)
        self._cells = cells

    def _cells_of(self, n: Mapping[str, Any], name: str, plan: list[Column]) -> tuple[Any, ...]:
        values: dict[str, Any] = {
            "time": n["_time"],
            "id": Text(str(n["id"]), style="bright_black"),
            # Text, not str: DataTable reads a str cell as markup
            "to": Text(first_line(name, next(c.width for c in plan if c.key == "to"))),
            "channel": plain(n.get("channel") or "-"),
            "status": status_text(n.get("status")),
            "priority": priority_text(n.get("priority")),
            "tries": str(n.get("attempt_count", len(n.get("attempts") or []))),
            "message": Text(first_line(n.get("text"), plan[-1].width)),
        }
        return tuple(values[c.key] for c in plan)

    def _update_changed(self, cells: dict[str, tuple[Any, ...]], plan: list[Column]) -> None:
        for key, values in cells.items():
            if self._cells.get(key) == values:
                continue
            for column, value in zip(plan, values, strict=True):
                self.update_cell(key, column.key, value)

    def _rebuild(self, keys: list[str], cells: dict[str, tuple[Any, ...]]) -> None:
        current = self._keys[self.cursor_row] if 0 <= self.cursor_row < len(self._keys) else None
        self.clear()
        for key in keys:
            self.add_row(*cells[key], key=key)
        self._keys = keys
        if current in keys:
            self.move_cursor(row=keys.index(current), animate=False)

    @property
    def selected_id(self) -> int | None:
        if not self._keys or not 0 <= self.cursor_row < len(self._keys):
            return None
        return int(self._keys[self.cursor_row])

    def on_resize(self, event: events.Resize) -> None:
        if self._last is not None:
            self.show(*self._last)
