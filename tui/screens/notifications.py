"""The home screen: a live table of recent notifications, with filters and paging.

The first page is live: ``notification.created`` adds rows, attempt and status events update
them in place. Older pages (``n``) are a snapshot of history that still updates the rows it shows.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, Input, Select, Static

from daemon.client import DaemonUnavailable, RemoteError
from daemon.protocol import NotificationSummaryJSON
from tui.base import fnotify_app
from tui.connection import Connected, DaemonEvent
from tui.formatting import plain
from tui.model import (
    STATUSES,
    Notification,
    NotificationFilter,
    apply_event,
    from_summary,
    is_final,
    notification_id_of,
)
from tui.screens.confirm import ConfirmScreen
from tui.widgets.banner import ConnectionBanner
from tui.widgets.notification_table import NotificationTable

PAGE_SIZE = 50
RENDER_DELAY = 0.05  # coalesce a burst of events into one table update
SEARCH_DELAY = 0.3  # wait for the operator to stop typing


class NotificationsScreen(Screen[None]):
    SUB_TITLE = "notifications"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "app.send", "Send"),
        Binding("slash", "focus_search", "Search", key_display="/"),
        Binding("f", "cycle_status", "Status"),
        Binding("n", "older", "Older", show=False),  # the line under the table says when there is more
        Binding("p", "newer", "Newer", show=False),
        Binding("c", "cancel", "Cancel", show=False),
        Binding("r", "app.recipients", "Recipients"),
        Binding("h", "app.health", "Health"),
        Binding("escape", "clear_filters", "Clear filters", show=False),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filter = NotificationFilter()
        self.notifications: list[Notification] = []
        self.before_id: int | None = None  # None: the live first page
        self.newer_pages: list[int | None] = []  # before_id of each page we paged back from
        self.has_older = False
        self.loaded = False
        self._render_timer: Timer | None = None
        self._search_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield ConnectionBanner()
        with Horizontal(id="filters"):
            yield Select([(s, s) for s in STATUSES], prompt="any status", compact=True, id="status-filter")
            yield Select[int]([], prompt="any recipient", compact=True, id="recipient-filter")
            yield Input(placeholder="search text  (/)", compact=True, id="search")
        yield NotificationTable(id="notifications")
        yield Static(id="page-info")
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.app, "recipients", self._recipients_changed, init=True)
        self.query_one(NotificationTable).focus()
        self.load()

    # -- data ----------------------------------------------------------------------------------

    @work(exclusive=True, group="load-notifications")
    async def load(self) -> None:
        params = self.filter.list_params(self.before_id, PAGE_SIZE + 1)  # one more: is there an older page?
        try:
            items: list[Notification] = await fnotify_app(self).call("list", **params)
        except DaemonUnavailable:
            return  # the banner says so; Connected reloads
        except RemoteError as exc:
            self.notify(str(exc), title="cannot list notifications", severity="error")
            return
        self.has_older = len(items) > PAGE_SIZE
        self.notifications = items[:PAGE_SIZE]
        self.loaded = True
        self.render_table()

    def on_connected(self, message: Connected) -> None:
        self.load()

    def on_daemon_event(self, message: DaemonEvent) -> None:
        event = message.event
        notification_id = notification_id_of(event)
        if notification_id is None:
            return
        index = next((i for i, n in enumerate(self.notifications) if n["id"] == notification_id), None)
        if index is not None:
            self.notifications[index] = apply_event(self.notifications[index], event)
        elif event["event"] == "notification.created" and self._is_live_page(event["data"]):
            self.notifications.insert(0, from_summary(event["data"]))
            if len(self.notifications) > PAGE_SIZE:
                del self.notifications[PAGE_SIZE:]
                self.has_older = True
        else:
            return
        if self._render_timer is None:
            self._render_timer = self.set_timer(RENDER_DELAY, self.render_table)

    def _is_live_page(self, notification: NotificationSummaryJSON) -> bool:
        return self.before_id is None and self.filter.matches(notification)

    def render_table(self) -> None:
        self._render_timer = None
        app = fnotify_app(self)
        table = self.query_one(NotificationTable)
        table.show(self.notifications, app.recipient_name, app.display_tz, app.clock())
        self.query_one("#page-info", Static).update(self._page_info())

    def _page_info(self) -> str:
        if not self.loaded:
            return "loading…"
        shown = len(self.notifications)
        page = len(self.newer_pages) + 1
        where = "newest, live" if self.before_id is None else f"page {page} of history (p: newer)"
        parts = [f"{shown} shown · {where}"]
        if self.has_older:
            parts.append("n: older")
        if not self.filter.is_empty:
            parts.append("esc: clear filters")
        if shown == 0:
            parts.append("nothing here yet: s to send one" if self.filter.is_empty else "no match")
        return " · ".join(parts)

    def _recipients_changed(self, recipients: tuple[dict[str, Any], ...]) -> None:
        select: Select[int] = self.query_one("#recipient-filter", Select)
        current = select.value
        by_name = sorted(recipients, key=lambda r: str(r["name"]).lower())
        options = [(plain(r["name"]), int(r["id"])) for r in by_name]
        with select.prevent(Select.Changed):
            select.set_options(options)
            if current in [value for _, value in options]:
                select.value = current
        if self.loaded:
            self.render_table()

    # -- filters and paging ---------------------------------------------------------------------

    def _refilter(self, new_filter: NotificationFilter) -> None:
        if new_filter == self.filter:
            return
        self.filter = new_filter
        self.before_id, self.newer_pages = None, []
        self.load()

    @on(Select.Changed, "#status-filter")
    def _status_chosen(self, event: Select.Changed) -> None:
        value = event.value if isinstance(event.value, str) else None
        self._refilter(replace(self.filter, status=value))

    @on(Select.Changed, "#recipient-filter")
    def _recipient_chosen(self, event: Select.Changed) -> None:
        value = event.value if isinstance(event.value, int) else None
        self._refilter(replace(self.filter, recipient_id=value))

    @on(Input.Changed, "#search")
    def _search_typed(self, event: Input.Changed) -> None:
        if self._search_timer is not None:
            self._search_timer.stop()
        text = event.value
        self._search_timer = self.set_timer(
            SEARCH_DELAY, lambda: self._refilter(replace(self.filter, search=text)))

    @on(Input.Submitted, "#search")
    def _search_done(self, event: Input.Submitted) -> None:
        self.query_one(NotificationTable).focus()

    def set_status_filter(self, status: str | None) -> None:
        select: Select[str] = self.query_one("#status-filter", Select)
        if status is None:
            select.clear()
        else:
            select.value = status

    def action_cycle_status(self) -> None:
        current = self.query_one("#status-filter", Select).value  # not self.filter: it lags a message
        order: list[str | None] = [None, *STATUSES]
        self.set_status_filter(order[(order.index(current if isinstance(current, str) else None) + 1) % len(order)])

    def action_focus_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_clear_filters(self) -> None:
        if isinstance(self.focused, Input):
            self.query_one(NotificationTable).focus()
            return
        self.query_one("#status-filter", Select).clear()
        self.query_one("#recipient-filter", Select).clear()
        self.query_one("#search", Input).value = ""

    def action_older(self) -> None:
        if not self.has_older or not self.notifications:
            self.notify("no older notifications")
            return
        self.newer_pages.append(self.before_id)
        self.before_id = self.notifications[-1]["id"]
        self.load()

    def action_newer(self) -> None:
        if not self.newer_pages:
            self.notify("this is the newest page")
            return
        self.before_id = self.newer_pages.pop()
        self.load()

    # -- rows ---------------------------------------------------------------------------------

    def on_data_table_row_selected(self, event: NotificationTable.RowSelected) -> None:
        if event.row_key.value is not None:
            fnotify_app(self).action_open_notification(int(event.row_key.value))

    def action_cancel(self) -> None:
        notification_id = self.query_one(NotificationTable).selected_id
        current = next((n for n in self.notifications if n["id"] == notification_id), None)
        if current is None:
            return
        if is_final(current):
            self.notify(f"#{notification_id} is already {current['status']}")
            return
        question = f"Cancel notification #{notification_id}? It will not be delivered."

        def cancel_if_confirmed(yes: bool | None) -> None:
            if yes:
                self._cancel(notification_id)

        self.app.push_screen(ConfirmScreen(question), cancel_if_confirmed)

    @work(group="cancel")
    async def _cancel(self, notification_id: int) -> None:
        try:
            await fnotify_app(self).call("cancel", id=notification_id)
        except (DaemonUnavailable, RemoteError) as exc:
            self.notify(str(exc), title=f"cannot cancel #{notification_id}", severity="error")
        else:
            self.notify(f"#{notification_id} cancelled")
