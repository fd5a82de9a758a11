"""A Telegram opt-in link for one recipient: the URL, its expiry, and a QR code to scan."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from daemon.client import DaemonUnavailable, RemoteError
from tui.base import fnotify_app
from tui.connection import DaemonEvent
from tui.formatting import full_time, plain, shown
from tui.model import Recipient
from tui.qr import qr_text

UNSUPPORTED = (
    "Opt-in links come from the daemon's Telegram bot, which is not running on this daemon.\n"
    "Meanwhile, set the chat id by hand: e (edit) on the recipient, then the Telegram field."
)


class LinkScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "app.pop_screen", "Close", key_display="esc"),
    ]

    def __init__(self, recipient: Recipient) -> None:
        super().__init__()
        self.recipient = recipient

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="link-dialog"):
            yield Static(plain(f"Telegram opt-in link for {self.recipient['name']}", style="bold"),
                         classes="dialog-title")
            yield Static("asking the daemon for a link…", id="link-body")
            yield Static(id="link-qr")  # hidden until there is a link
            with Horizontal(classes="buttons"):
                yield Button("Close esc", id="close", compact=True)

    def on_mount(self) -> None:
        self.query_one("#link-dialog").focus()  # ↑/↓ scroll to the QR code on a small terminal
        self.make_link()

    def on_daemon_event(self, message: DaemonEvent) -> None:
        """The recipient opened the link and the bot linked their chat: say so, the code is spent."""
        event = message.event
        if event["event"] != "recipient.linked" or event["data"]["recipient_id"] != self.recipient["id"]:
            return
        self.query_one("#link-qr", Static).display = False
        self.query_one("#link-body", Static).update(plain(
            f"✓ {self.recipient['name']} opened the link: Telegram chat {event['data']['telegram_chat_id']} "
            "is linked, and notifications reach them there now.", style="bold green"))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    @work(exclusive=True, group="link")
    async def make_link(self) -> None:
        body = self.query_one("#link-body", Static)
        try:
            result = await fnotify_app(self).call("recipient.link", id=self.recipient["id"])
        except RemoteError as exc:
            if exc.code == "unsupported":
                said = (f"\n\n(the daemon says: {shown(exc)})", "bright_black")
                body.update(Text.assemble(UNSUPPORTED, said))
            else:
                body.update(plain(exc, style="bold red"))
            return
        except DaemonUnavailable as exc:
            body.update(plain(exc, style="bold red"))
            return
        url = shown(result["url"])
        expires = full_time(result.get("expires_at"), fnotify_app(self).display_tz)
        body.update(Text.assemble(
            "Send this link to the recipient, or let them scan the code:\n\n",
            (url, "bold underline"),
            (f"\n\nsingle use · expires {expires}", "bright_black"),
        ))
        qr = self.query_one("#link-qr", Static)
        qr.update(qr_text(url))
        qr.display = True
