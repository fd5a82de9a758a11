"""Inline validation errors: a line under each form field, filled from ``RemoteError.field``."""

from __future__ import annotations

from textual.dom import DOMNode
from textual.widgets import Static

from daemon.client import RemoteError
from daemon.protocol import visible

FORM_LEVEL = "form"


class FieldError(Static):
    """Empty and hidden until the daemon (or the form) rejects its field."""

    DEFAULT_CSS = """
    FieldError { color: $text-error; height: auto; display: none; }
    """

    def __init__(self, field: str) -> None:
        super().__init__("", id=f"{field.replace('_', '-')}-error", markup=False)
        self.field = field

    def show_error(self, message: str | None) -> None:
        self.update(f"↑ {visible(message)}" if message else "")  # markup=False above; no raw controls
        self.display = bool(message)


def remote_reason(exc: RemoteError) -> str:
    """``must be an integer`` rather than ``recipient_id: must be an integer`` next to that field."""
    text = str(exc)
    prefix = f"{exc.field}: "
    return text[len(prefix):] if exc.field and text.startswith(prefix) else text


def clear_errors(root: DOMNode) -> None:
    for error in root.query(FieldError):
        error.show_error(None)


def show_error(root: DOMNode, field: str | None, message: str, aliases: dict[str, str] | None = None) -> None:
    """Under ``field`` (after ``aliases``: protocol name -> form name) or at the form level."""
    name = (aliases or {}).get(field or "", field or FORM_LEVEL)
    for error in root.query(FieldError):
        if error.field == name:
            error.show_error(message)
            return
    for error in root.query(FieldError):
        if error.field == FORM_LEVEL:
            error.show_error(f"{field}: {message}" if field else message)
            return
