"""Typed access to the app from screens and widgets (Textual types ``self.app`` as a plain App).

``HostApp`` declares the part of ``tui.app.FnotifyApp`` that screens and widgets use; the app
subclasses it. Screens depend on this module, not on ``tui.app`` (which imports every screen), so
there is no import cycle between the app and its screens.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, cast

from textual.app import App
from textual.dom import DOMNode

from tui.model import Recipient


class HostApp(App[None]):
    """What screens and widgets may ask of the app."""

    socket_path: Path
    display_tz: tzinfo | None
    clock: Callable[[], datetime]
    recipients: Any  # a Textual ``var[tuple[Recipient, ...]]`` on the app

    @abstractmethod
    async def call(self, op: str, **params: Any) -> Any:
        """One request to the daemon; raises ``daemon.client.RemoteError`` when refused."""

    @abstractmethod
    def recipient_name(self, recipient_id: int | None) -> str: ...

    @abstractmethod
    def recipient(self, recipient_id: int | None) -> Recipient | None: ...

    @abstractmethod
    def action_help(self) -> None: ...

    @abstractmethod
    def action_home(self) -> None: ...

    @abstractmethod
    def action_send(self, recipient_id: int | None = None) -> None: ...

    @abstractmethod
    def action_recipients(self) -> None: ...

    @abstractmethod
    def action_add_recipient(self) -> None: ...

    @abstractmethod
    def action_health(self) -> None: ...

    @abstractmethod
    def action_open_notification(self, notification_id: int) -> None: ...

    @abstractmethod
    def action_filter_status(self, status: str | None) -> None: ...


def fnotify_app(node: DOMNode) -> HostApp:
    return cast(HostApp, node.app)
