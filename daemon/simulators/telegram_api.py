"""The Bot API's shapes for the Telegram simulator: its error envelope, request parameters and the checks
Telegram makes on them, and the Message / User / Chat / Update objects it answers with.

Nothing here holds state or serves a socket: ``daemon.simulators.telegram`` does that, and builds its
answers from these pieces.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from aiohttp import web

Json = dict[str, Any]
MAX_TEXT = 4096  # UTF-16 code units, as Telegram counts
# what getUpdates delivers when allowed_updates is absent or empty
DEFAULT_UPDATE_TYPES = frozenset(
    {"message", "edited_message", "channel_post", "edited_channel_post", "callback_query", "inline_query",
     "chosen_inline_result", "my_chat_member", "chat_join_request", "poll", "poll_answer",
     "shipping_query", "pre_checkout_query", "business_message"}
)
NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content and reply markup are "
                "exactly the same as a current content and reply markup of the message")


class TelegramApiError(Exception):
    """Raised inside a method handler; answered as Telegram's error envelope."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def response(self) -> web.Response:
        payload: Json = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            payload["parameters"] = {"retry_after": self.retry_after}
        return web.json_response(payload, status=self.code)


def too_many_requests(seconds: int) -> TelegramApiError:
    return TelegramApiError(429, f"Too Many Requests: retry after {seconds}", retry_after=seconds)


def fault_error(kind: str, retry_after: float) -> TelegramApiError:
    """What Telegram answers for an injected fault of ``kind`` (error, rate_limit, blocked, permanent)."""
    if kind == "error":
        return TelegramApiError(500, "Internal Server Error")
    if kind == "rate_limit":
        return too_many_requests(max(1, math.ceil(retry_after)))  # aiogram cannot parse a fractional one
    if kind == "blocked":
        return TelegramApiError(403, "Forbidden: bot was blocked by the user")
    return TelegramApiError(400, "Bad Request: chat not found")  # permanent


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A message the bot sent (as last edited)."""

    chat_id: int
    message_id: int
    text: str
    parse_mode: str | None
    reply_markup: Json | None
    date: int
    edit_date: int | None = None

    @property
    def callback_data(self) -> list[str]:
        """The callback_data of every inline button, row by row."""
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [b["callback_data"] for row in rows for b in row if "callback_data" in b]

    def to_json(self) -> Json:
        return {"chat_id": self.chat_id, "message_id": self.message_id, "text": self.text,
                "parse_mode": self.parse_mode, "reply_markup": self.reply_markup, "date": self.date,
                "edit_date": self.edit_date}


# --- parameters and Telegram's checks on them ------------------------------------------------


class Params:
    """One request's parameters, with Telegram's coercions and error texts."""

    def __init__(self, data: Json) -> None:
        self.data = data

    def text(self, key: str) -> str | None:
        value = self.data.get(key)
        return None if value is None else str(value)

    def flag(self, key: str) -> bool:
        return self.data.get(key) in (True, "true", "True", "1")

    def integer(self, key: str, default: int = 0) -> int:
        value = self.data.get(key)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise TelegramApiError(400, f"Bad Request: invalid {key} specified") from None

    def json_value(self, key: str) -> Any:
        value = self.data.get(key)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise TelegramApiError(400, f"Bad Request: can't parse {key} JSON object") from None
        return value

    def chat_id(self) -> int:
        if self.data.get("chat_id") in (None, ""):
            raise TelegramApiError(400, "Bad Request: chat_id is empty")
        try:
            return int(self.data["chat_id"])
        except (TypeError, ValueError):  # "@channelname": there are no channels here
            raise TelegramApiError(400, "Bad Request: chat not found") from None


async def read_params(request: web.Request) -> Json:
    """Query args, then the body: JSON, urlencoded or multipart form (files are ignored)."""
    data: Json = dict(request.query)
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise TelegramApiError(400, "Bad Request: can't parse JSON body") from None
        if not isinstance(body, dict):
            raise TelegramApiError(400, "Bad Request: JSON body must be an object")
        data.update(body)
    elif request.can_read_body:
        form = await request.post()
        data.update({key: value for key, value in form.items() if isinstance(value, str)})
    return data


def check_text(text: str | None) -> str:
    if not text or not text.strip():
        raise TelegramApiError(400, "Bad Request: message text is empty")
    if utf16_len(text) > MAX_TEXT:
        raise TelegramApiError(400, "Bad Request: message is too long")
    return text


def check_markup(markup: Any) -> Json | None:
    if markup is None:
        return None
    rows = markup.get("inline_keyboard", []) if isinstance(markup, dict) else None
    if not isinstance(rows, list) or not all(
        isinstance(row, list) and all(isinstance(b, dict) and "text" in b for b in row) for row in rows
    ):
        raise TelegramApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
    if any(len(str(b.get("callback_data", "")).encode()) > 64 for row in rows for b in row):
        raise TelegramApiError(400, "Bad Request: BUTTON_DATA_INVALID")
    return markup  # type: ignore[no-any-return]


def commands_key(p: Params) -> str:
    """Where setMyCommands keeps a list: one per scope and language."""
    scope = p.json_value("scope") or {"type": "default"}
    return f"{json.dumps(scope, sort_keys=True)}|{p.text('language_code') or ''}"


def update_type(update: Json) -> str:
    return next((key for key in update if key != "update_id"), "")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


# --- the objects Telegram answers with -------------------------------------------------------


def bot_user(bot_id: int, username: str) -> Json:
    return {"id": bot_id, "is_bot": True, "first_name": "failover-notify (simulated)", "username": username}


def bot_profile(bot: Json) -> Json:
    """getMe's answer."""
    return {**bot, "can_join_groups": True, "can_read_all_group_messages": False,
            "supports_inline_queries": False, "can_connect_to_business": False, "has_main_web_app": False}


def webhook_info(webhook: Json, pending: int) -> Json:
    """getWebhookInfo's answer for the webhook set (``{}`` when none) and ``pending`` queued updates."""
    info: Json = {"url": webhook.get("url", ""), "has_custom_certificate": False, "pending_update_count": pending}
    if webhook:
        info["max_connections"] = 40
        if webhook.get("allowed_updates"):
            info["allowed_updates"] = webhook["allowed_updates"]
    return info


def user(user_id: int, first_name: str, username: str | None) -> Json:
    found: Json = {"id": user_id, "is_bot": False, "first_name": first_name}
    return {**found, "username": username} if username else found


def chat(chat_id: int, private_user: Json) -> Json:
    """A group for a negative id, else the private chat with ``private_user``."""
    if chat_id < 0:
        kind = "supergroup" if str(chat_id).startswith("-100") else "group"
        return {"id": chat_id, "type": kind, "title": f"Group {chat_id}"}
    return {"type": "private", **{k: v for k, v in private_user.items() if k != "is_bot"}}


def bot_message(sent: SentMessage, bot: Json, in_chat: Json) -> Json:
    """The Message object of a message the bot sent."""
    message: Json = {"message_id": sent.message_id, "from": bot, "chat": in_chat, "date": sent.date,
                     "text": sent.text}
    if sent.edit_date is not None:
        message["edit_date"] = sent.edit_date
    if sent.reply_markup and "inline_keyboard" in sent.reply_markup:
        message["reply_markup"] = sent.reply_markup
    return message


def user_message(message_id: int, sender: Json, in_chat: Json, date: int, text: str) -> Json:
    """The Message object of a text the user sent; a leading /command gets its entity."""
    message: Json = {"message_id": message_id, "from": sender, "chat": in_chat, "date": date, "text": text}
    if text.startswith("/"):
        command = text.split(maxsplit=1)[0]
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": utf16_len(command)}]
    return message


def member_change(status: str, bot: Json, in_chat: Json, sender: Json, date: int) -> Json:
    """A my_chat_member update's body: the user blocked ("kicked") or restarted ("member") the bot."""
    kicked = {"status": "kicked", "until_date": 0, "user": bot}
    joined = {"status": "member", "user": bot}
    old, new = (joined, kicked) if status == "kicked" else (kicked, joined)
    return {"chat": in_chat, "from": sender, "date": date, "old_chat_member": old, "new_chat_member": new}
