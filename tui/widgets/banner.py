"""The 'daemon not reachable' banner every screen shows while the event stream is down."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui.base import fnotify_app
from tui.formatting import shown


class ConnectionBanner(Static):
    """Hidden while connected; otherwise says where it is trying and why it fails."""

    DEFAULT_CLASSES = "banner"

    def on_mount(self) -> None:
        self.watch(self.app, "daemon_problem", self._show_problem, init=True)

    def _show_problem(self, problem: str | None) -> None:
        self.display = problem is not None
        if problem is None:
            return
        path = fnotify_app(self).socket_path
        text = Text.assemble(("⚠ daemon not reachable at ", "bold"), (shown(path), "bold"),
                             (" — retrying", "bold"), (f"  ({shown(problem)}; start it with `fnotify run`)", ""))
        self.update(text)
