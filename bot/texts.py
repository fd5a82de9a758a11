"""What the bot says, in one place. Plain text: the bot sends without a parse mode."""

from __future__ import annotations

from daemon.core.models import Channel, Recipient

COMMANDS: tuple[tuple[str, str], ...] = (
    ("start", "link this chat (open your personal link) or say hello"),
    ("status", "which recipient this chat is linked to, which channels are on"),
    ("stop", "pause notifications on Telegram"),
    ("resume", "turn Telegram notifications back on"),
    ("quiet", "quiet hours, e.g. /quiet 22:00-07:00, or /quiet off"),
    ("timezone", "your time zone, e.g. /timezone Europe/Moscow"),
    ("help", "what this bot does"),
)
"""Registered with setMyCommands so Telegram clients offer them."""

HELP = (
    "I deliver notifications from failover-notify. When Telegram does not reach you, they go out "
    "by email or SMS instead.\n\n"
    "/status - which recipient this chat is linked to, which channels are on\n"
    "/stop - pause notifications on Telegram (email and SMS carry on)\n"
    "/resume - turn them back on\n"
    "/quiet 22:00-07:00 - hold all but urgent notifications overnight (/quiet off: no quiet hours)\n"
    "/timezone Europe/Moscow - the time zone your quiet hours are in\n"
    "/help - this message\n\n"
    "To link this chat, open the personal link your operator gave you."
)

NOT_LINKED = (
    "This chat is not linked to anyone yet. To receive notifications here, ask your operator for "
    "a personal link (they make it with: fnotify recipient link) and open it."
)
WELCOME = "Hello! I deliver notifications from failover-notify.\n\n" + NOT_LINKED
LINKED = (
    "✅ Linked: this chat now receives the notifications for {name}.\n\n"
    "/stop pauses them here, /status shows your settings, /help explains the rest."
)
ALREADY_LINKED = "This chat is already linked to {name}; nothing changed. /status shows your settings."
TOKEN_UNKNOWN = "Sorry, I don't recognise this link, so nothing changed. Please ask your operator for a new one."
TOKEN_USED = ("Sorry, this link has already been used: each link works only once, so nothing changed. "
              "Please ask your operator for a new one.")
TOKEN_EXPIRED = "Sorry, this link has expired, so nothing changed. Please ask your operator for a new one."
CHAT_TAKEN = (
    "This chat is already linked to {holder}, so I did not link it to {name}: a chat receives one "
    "recipient's notifications. Ask your operator to unlink it first if that is what you want."
)
HELLO_AGAIN = "Hello again, {name}. {state}"
STOPPED = ("🔕 Paused: notifications will no longer come here; they go by email or SMS instead.\n"
           "/resume turns them back on.")
ALREADY_STOPPED = "Notifications on Telegram are already paused. /resume turns them back on."
RESUMED = "🔔 Back on: notifications come here again."
ALREADY_RESUMED = "Notifications on Telegram are already on."
UNKNOWN_MESSAGE = "I only understand commands. /help lists them."
QUIET_USAGE = "Send /quiet 22:00-07:00 to hold all but urgent notifications in that window, or /quiet off."
TIMEZONE_USAGE = "Send /timezone followed by your time zone, e.g. /timezone Europe/Moscow."
SETTING_REFUSED = "Sorry, that did not work, so nothing changed: {reason}"

ACK_DONE = "✅ Acknowledged: no further channels will be tried."
ACK_SUFFIX = "\n\n✅ Acknowledged"
ACK_ALREADY = "Already acknowledged."
ACK_CLOSED = "This notification is closed; there is nothing left to acknowledge."
ACK_UNKNOWN = "This button does not belong to a notification of this chat."


def telegram_state(recipient: Recipient) -> str:
    if recipient.telegram_blocked:
        return "Telegram: blocked (send /start to unblock)"
    if Channel.TELEGRAM in recipient.opt_out:
        return "Telegram: paused (/resume turns it back on)"
    return "Telegram: on"


def quiet_hours(recipient: Recipient) -> str:
    """The answer to ``/quiet`` and ``/timezone``: the settings now in force."""
    if recipient.quiet_hours is None:
        return f"🔔 No quiet hours: notifications come at any time. Time zone: {recipient.timezone}."
    return (f"🌙 Quiet hours {recipient.quiet_hours} ({recipient.timezone}): notifications that are not urgent "
            "wait until they end.")


def status(recipient: Recipient) -> str:
    """``/status``: the recipient and each channel, as the chat's owner may see them."""
    lines = [f"This chat is linked to {recipient.name} (recipient {recipient.id}).", telegram_state(recipient)]
    for channel, address, missing in ((Channel.EMAIL, recipient.email, "no address on file"),
                                      (Channel.SMS, recipient.phone, "no phone number on file")):
        if address is None:
            state = missing
        elif channel in recipient.opt_out:
            state = "off (opted out)"
        else:
            state = "on"
        lines.append(f"{'Email' if channel is Channel.EMAIL else 'SMS'}: {state}")
    if recipient.quiet_hours is not None:
        lines.append(f"Quiet hours: {recipient.quiet_hours} ({recipient.timezone})")
    return "\n".join(lines)
