"""Typed access to the app from screens and widgets (Textual types ``self.app`` as a plain App)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.dom import DOMNode

if TYPE_CHECKING:
    from tui.app import FnotifyApp


def fnotify_app(node: DOMNode) -> FnotifyApp:
    return cast("FnotifyApp", node.app)
