"""A loopback Telegram Bot API: ``/bot{token}/{method}`` as api.telegram.org serves it.

Parameters come from the query string, a JSON body or a form (aiogram posts a form whose complex
values, such as ``reply_markup``, are JSON strings). Answers use Telegram's envelope::

    {"ok": true, "result": ...}
    {"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 3",
     "parameters": {"retry_after": 3}}

Methods: getMe, sendMessage, editMessageText, editMessageReplyMarkup, answerCallbackQuery,
getUpdates (long polling), set/get/deleteMyCommands, set/deleteWebhook, getWebhookInfo, close, logOut.
A wrong token is a 401, an unknown method a 404.

Faults (``self.faults``, target = the chat id) are consulted once per sendMessage: down closes the
connection without an answer, error is a 500, rate_limit a 429 with ``retry_after`` in whole seconds
(at least 1: aiogram cannot parse a fractional one), permanent a 400 chat not found, blocked a 403,
latency sleeps and then serves. Chats in ``blocked_chats`` / ``unknown_chats`` always get 403 / 400.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import itertools
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from daemon.simulators.control import fault_routes, json_object
from daemon.simulators.faults import FaultPlan, FaultRule
from daemon.simulators.flood import DEFAULT_BURST, FloodControl

log = logging.getLogger(__name__)

Json = dict[str, Any]
READY_TIMEOUT = 5.0
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


class _DropConnection(Exception):
    """Raised after the transport was closed: nothing is to be answered."""


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


class _Params:
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


class TelegramSimulator:
    """The Bot API of one bot on 127.0.0.1, with fault injection, a message log and an update queue."""

    def __init__(self, token: str = "123456:TEST-TOKEN", username: str = "fnotify_test_bot") -> None:
        self.token = token
        self.username = username
        self.bot_id = int(token.partition(":")[0])
        self.faults = FaultPlan()
        self.blocked_chats: set[int] = set()
        self.unknown_chats: set[int] = set()
        self.messages: list[SentMessage] = []
        self.callback_answers: list[Json] = []
        self.commands: dict[str, list[Json]] = {}
        self.webhook: Json = {}
        self.requests: list[str] = []  # method names, as called
        self.base_url: str | None = None
        self.flood: FloodControl | None = None  # see limit_rate
        self._updates: list[Json] = []
        self._last_update_id = 0
        self._open_queries: set[str] = set()  # callback queries not answered yet
        self._ids = itertools.count(1)  # message ids and callback query ids
        self._users: dict[int, tuple[str, str | None]] = {}
        self._allowed = DEFAULT_UPDATE_TYPES
        self._polls = 0  # generation of the newest getUpdates: it terminates older ones, as Telegram does
        self._changed = asyncio.Event()
        self._closing = False
        self._runner: web.AppRunner | None = None
        # Bot API method names are case-insensitive: "sendMessage" -> "sendmessage" -> _api_send_message
        self._methods: dict[str, Callable[[_Params], Awaitable[Any]]] = {
            name[5:].replace("_", ""): getattr(self, name) for name in dir(self) if name.startswith("_api_")
        }

    # --- lifecycle -------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._drop_middleware])
        app.router.add_route("*", "/bot{token}/{method}", self._dispatch)
        app.router.add_route("*", "/{path:.*}", self._not_found)  # Telegram's JSON, not aiohttp's text
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (loopback only; port 0 picks one) and return the base URL."""
        if not _is_loopback(host):
            raise ValueError(f"host: the Telegram simulator only binds loopback, not {host!r}")
        if self._runner is not None:
            raise RuntimeError("Telegram simulator already started")
        self._closing = False
        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            bound_host, bound_port = runner.addresses[0][:2]
            await _prove_listening(bound_host, bound_port)
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.base_url = f"http://{shown}:{bound_port}"
        log.debug("Telegram simulator listening on %s", self.base_url)
        return self.base_url

    async def stop(self) -> None:
        """Answer pending long polls and latency faults, close every connection (idempotent)."""
        self._closing = True
        self._wake()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def reset(self) -> None:
        """Forget messages, updates, faults and blocked / unknown chats."""
        for collection in (self.messages, self.callback_answers, self.requests, self._updates,
                           self.faults, self.blocked_chats, self.unknown_chats, self._open_queries):
            collection.clear()

    # --- the test side ---------------------------------------------------------------------

    def messages_to(self, chat_id: int) -> list[SentMessage]:
        return [m for m in self.messages if m.chat_id == chat_id]

    async def wait_for_messages(self, n: int, timeout: float = 5.0) -> list[SentMessage]:
        """Wait until at least ``n`` messages were sent; return them all."""
        try:
            async with asyncio.timeout(timeout):
                while len(self.messages) < n:
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(
                f"Telegram simulator: {len(self.messages)} message(s) after {timeout}s, expected {n}"
            ) from None
        return list(self.messages)

    @property
    def pending_updates(self) -> list[Json]:
        """Updates queued and not yet confirmed by a getUpdates offset."""
        return list(self._updates)

    def push_update(self, update: Json) -> Json:
        """Queue a raw update for getUpdates, numbering it when it has no update_id; return it."""
        if "update_id" in update:
            self._last_update_id = max(self._last_update_id, int(update["update_id"]))
        else:
            self._last_update_id += 1
            update = {"update_id": self._last_update_id, **update}
        if isinstance(query := update.get("callback_query"), dict) and "id" in query:
            self._open_queries.add(str(query["id"]))
        self._updates.append(update)
        self._wake()
        return update

    def user_sends(self, chat_id: int, text: str, *, first_name: str = "Test",
                   username: str | None = None) -> Json:
        """A private-chat message from user ``chat_id``; a leading /command gets its entity."""
        self._users[chat_id] = (first_name, username)
        message: Json = {"message_id": next(self._ids), "from": self._user(chat_id),
                         "chat": self._chat(chat_id), "date": int(time.time()), "text": text}
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": _utf16_len(command)}]
        return self.push_update({"message": message})

    def press_button(self, chat_id: int, message_id: int, data: str) -> Json:
        """The user taps an inline button under one of the bot's messages."""
        sent = next((m for m in self.messages if (m.chat_id, m.message_id) == (chat_id, message_id)), None)
        if sent is None:
            raise ValueError(f"no message {message_id} was sent to chat {chat_id}")
        return self.push_update({"callback_query": {
            "id": f"{self.bot_id}{next(self._ids):08d}", "from": self._user(chat_id),
            "message": self._message_json(sent), "chat_instance": str(-chat_id), "data": data,
        }})

    def member_status(self, chat_id: int, status: str) -> Json:
        """The user blocks ("kicked") or restarts ("member") the bot; sendMessage follows suit."""
        if status not in ("kicked", "member"):
            raise ValueError(f"status: must be 'kicked' or 'member', not {status!r}")
        if status == "kicked":
            self.blocked_chats.add(chat_id)
        else:
            self.blocked_chats.discard(chat_id)
        member = {"user": self._bot_user()}
        kicked = {"status": "kicked", "until_date": 0, **member}
        joined = {"status": "member", **member}
        old, new = (joined, kicked) if status == "kicked" else (kicked, joined)
        return self.push_update({"my_chat_member": {
            "chat": self._chat(chat_id), "from": self._user(chat_id), "date": int(time.time()),
            "old_chat_member": old, "new_chat_member": new,
        }})

    # --- the control API (mounted under /telegram by whoever hosts it) ---------------------

    def control_routes(self) -> web.RouteTableDef:
        """POST /faults (a FaultRule), /updates (a raw update), /user_sends ({chat_id, text}),
        /press_button ({chat_id, message_id, data}), /member_status ({chat_id, status}) answer 201
        with what was created, or 400 naming the bad input; GET /faults, DELETE /faults, GET /messages."""
        routes = fault_routes(self.faults, lambda: self.messages, post_faults=False)
        routes.post("/{what:faults|updates|user_sends|press_button|member_status}")(self._control_post)
        return routes

    async def _control_post(self, request: web.Request) -> web.Response:
        try:
            data = await json_object(request)
            what = request.match_info["what"]
            if what == "faults":
                rule = FaultRule.from_json(data)
                self.faults.add(rule)
                return web.json_response(rule.to_json(), status=201)
            if what == "updates":
                return web.json_response(self.push_update(data), status=201)
            if what == "press_button":
                pressed = self.press_button(int(data["chat_id"]), int(data["message_id"]), str(data["data"]))
                return web.json_response(pressed, status=201)
            if what == "member_status":
                return web.json_response(self.member_status(int(data["chat_id"]), str(data["status"])), status=201)
            text = data["text"]
            if not isinstance(text, str) or not text:
                raise ValueError("text: must be a non-empty string")
            return web.json_response(self.user_sends(int(data["chat_id"]), text), status=201)
        except KeyError as exc:
            return web.json_response({"error": f"{exc.args[0]}: required"}, status=400)
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)

    # --- request handling ------------------------------------------------------------------

    @web.middleware
    async def _drop_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
        except _DropConnection:
            # the transport is closed; an empty response keeps aiohttp from logging a 500
            return web.Response()
        return response

    async def _not_found(self, request: web.Request) -> web.Response:
        return TelegramApiError(404, "Not Found").response()

    async def _dispatch(self, request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.match_info["token"].encode(), self.token.encode()):
            return TelegramApiError(401, "Unauthorized").response()
        method = request.match_info["method"]
        handler = self._methods.get(method.lower())
        if handler is None:
            return TelegramApiError(404, "Not Found: method not found").response()
        self.requests.append(method)
        try:
            params = _Params(await _read_params(request))
            if handler == self._api_send_message:
                await self._apply_fault(request, params.chat_id())
            result = await handler(params)
        except TelegramApiError as exc:
            return exc.response()
        return web.json_response({"ok": True, "result": result})

    async def _apply_fault(self, request: web.Request, chat_id: int) -> None:
        """Serve the fault planned for this message, if any, by raising; return to serve normally."""
        rule = self.faults.take(chat_id)
        if rule is None:
            return
        if rule.kind == "latency":
            await self._sleep(rule.delay)
            if not self._closing:
                return
        if rule.kind in ("down", "latency"):  # a latency cut short by stop() sends nothing either
            if request.transport is not None:
                request.transport.abort()
            raise _DropConnection
        if rule.kind == "error":
            raise TelegramApiError(500, "Internal Server Error")
        if rule.kind == "rate_limit":
            seconds = max(1, math.ceil(rule.retry_after))
            raise TelegramApiError(429, f"Too Many Requests: retry after {seconds}", retry_after=seconds)
        if rule.kind == "blocked":
            raise TelegramApiError(403, "Forbidden: bot was blocked by the user")
        raise TelegramApiError(400, "Bad Request: chat not found")  # permanent

    def limit_rate(self, rate_global: float = 30.0, rate_per_chat: float = 1.0, burst: float = DEFAULT_BURST) -> None:
        """Enforce flood limits on sendMessage from now on: beyond them a 429 with retry_after, counted
        in ``flood.refusals``."""
        self.flood = FloodControl(rate_global, rate_per_chat, burst=burst)

    def _pace(self, chat_id: int) -> None:
        """Telegram's flood control (when ``limit_rate`` turned it on): a 429 when the bot sends too fast."""
        if self.flood is not None and (seconds := self.flood.check(chat_id)) is not None:
            raise TelegramApiError(429, f"Too Many Requests: retry after {seconds}", retry_after=seconds)

    # --- Bot API methods -------------------------------------------------------------------

    async def _api_get_me(self, p: _Params) -> Json:
        return {**self._bot_user(), "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False, "can_connect_to_business": False,
                "has_main_web_app": False}

    async def _api_send_message(self, p: _Params) -> Json:
        chat_id = p.chat_id()
        if chat_id in self.unknown_chats:
            raise TelegramApiError(400, "Bad Request: chat not found")
        if chat_id in self.blocked_chats:
            raise TelegramApiError(403, "Forbidden: bot was blocked by the user")
        text = _check_text(p.text("text"))
        markup = _check_markup(p.json_value("reply_markup"))
        self._pace(chat_id)
        sent = SentMessage(chat_id, next(self._ids), text, p.text("parse_mode"), markup, int(time.time()))
        self.messages.append(sent)
        self._wake()
        return self._message_json(sent)

    async def _api_edit_message_text(self, p: _Params) -> Json:
        sent = self._find(p.chat_id(), p.integer("message_id"))
        text, markup = _check_text(p.text("text")), _check_markup(p.json_value("reply_markup"))
        if (text, markup) == (sent.text, sent.reply_markup):
            raise TelegramApiError(400, NOT_MODIFIED)
        return self._edit(sent, text=text, parse_mode=p.text("parse_mode"), reply_markup=markup)

    async def _api_edit_message_reply_markup(self, p: _Params) -> Json:
        sent = self._find(p.chat_id(), p.integer("message_id"))
        if (markup := _check_markup(p.json_value("reply_markup"))) == sent.reply_markup:
            raise TelegramApiError(400, NOT_MODIFIED)
        return self._edit(sent, reply_markup=markup)

    async def _api_answer_callback_query(self, p: _Params) -> bool:
        query_id = p.text("callback_query_id")
        if query_id not in self._open_queries:
            raise TelegramApiError(
                400, "Bad Request: query is too old and response timeout expired or query ID is invalid"
            )
        self._open_queries.discard(query_id)
        self.callback_answers.append(
            {"callback_query_id": query_id, "text": p.text("text"), "show_alert": p.flag("show_alert")}
        )
        return True

    async def _api_get_updates(self, p: _Params) -> list[Json]:
        if self.webhook.get("url"):
            raise TelegramApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                   "use deleteWebhook to delete the webhook first")
        offset, limit = p.integer("offset"), min(max(p.integer("limit", 100), 1), 100)
        timeout = max(p.integer("timeout"), 0)
        if (allowed := p.json_value("allowed_updates")) is not None:
            if not isinstance(allowed, list):
                raise TelegramApiError(400, "Bad Request: can't parse allowed_updates JSON object")
            self._allowed = frozenset(allowed) or DEFAULT_UPDATE_TYPES  # the setting persists
        self._polls += 1
        generation = self._polls
        self._wake()  # terminates an older long poll still waiting
        if offset > 0:  # confirms every update before offset
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:  # only the last -offset updates; the rest are forgotten
            self._updates = self._updates[offset:]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._updates = [u for u in self._updates if _update_type(u) in self._allowed]
            if self._updates or self._closing or loop.time() >= deadline:
                return self._updates[:limit]
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await changed.wait()
            if generation != self._polls:
                raise TelegramApiError(409, "Conflict: terminated by other getUpdates request; make sure "
                                       "that only one bot instance is running")

    async def _api_set_my_commands(self, p: _Params) -> bool:
        commands = p.json_value("commands")
        if not isinstance(commands, list) or not all(isinstance(c, dict) for c in commands):
            raise TelegramApiError(400, "Bad Request: can't parse commands JSON object")
        self.commands[_commands_key(p)] = commands
        return True

    async def _api_get_my_commands(self, p: _Params) -> list[Json]:
        return self.commands.get(_commands_key(p), [])

    async def _api_delete_my_commands(self, p: _Params) -> bool:
        self.commands.pop(_commands_key(p), None)
        return True

    async def _api_set_webhook(self, p: _Params) -> bool:
        url = p.text("url") or ""
        self.webhook = {"url": url, "secret_token": p.text("secret_token"),
                        "allowed_updates": p.json_value("allowed_updates")} if url else {}
        if p.flag("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _api_delete_webhook(self, p: _Params) -> bool:
        self.webhook = {}
        if p.flag("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _api_get_webhook_info(self, p: _Params) -> Json:
        info: Json = {"url": self.webhook.get("url", ""), "has_custom_certificate": False,
                      "pending_update_count": len(self._updates)}
        if self.webhook:
            info["max_connections"] = 40
            if self.webhook.get("allowed_updates"):
                info["allowed_updates"] = self.webhook["allowed_updates"]
        return info

    async def _api_close(self, p: _Params) -> bool:
        return True

    async def _api_log_out(self, p: _Params) -> bool:
        return True

    # --- helpers ---------------------------------------------------------------------------

    def _wake(self) -> None:
        # waiters hold the old event, which fires once; a fresh one is armed for the next change
        self._changed.set()
        self._changed = asyncio.Event()

    async def _sleep(self, delay: float) -> None:
        """Sleep for a latency fault, cut short by stop()."""
        deadline = asyncio.get_running_loop().time() + delay
        while not self._closing and asyncio.get_running_loop().time() < deadline:
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await changed.wait()

    def _find(self, chat_id: int, message_id: int) -> SentMessage:
        for sent in self.messages:
            if (sent.chat_id, sent.message_id) == (chat_id, message_id):
                return sent
        raise TelegramApiError(400, "Bad Request: message to edit not found")

    def _edit(self, sent: SentMessage, **changes: Any) -> Json:
        edited = replace(sent, edit_date=int(time.time()), **changes)
        self.messages[self.messages.index(sent)] = edited
        self._wake()
        return self._message_json(edited)

    def _bot_user(self) -> Json:
        return {"id": self.bot_id, "is_bot": True, "first_name": "failover-notify (simulated)",
                "username": self.username}

    def _user(self, user_id: int) -> Json:
        first_name, username = self._users.get(user_id, ("Test", None))
        user: Json = {"id": user_id, "is_bot": False, "first_name": first_name}
        return {**user, "username": username} if username else user

    def _chat(self, chat_id: int) -> Json:
        if chat_id < 0:
            kind = "supergroup" if str(chat_id).startswith("-100") else "group"
            return {"id": chat_id, "type": kind, "title": f"Group {chat_id}"}
        return {"type": "private", **{k: v for k, v in self._user(chat_id).items() if k != "is_bot"}}

    def _message_json(self, sent: SentMessage) -> Json:
        message: Json = {"message_id": sent.message_id, "from": self._bot_user(),
                         "chat": self._chat(sent.chat_id), "date": sent.date, "text": sent.text}
        if sent.edit_date is not None:
            message["edit_date"] = sent.edit_date
        if sent.reply_markup and "inline_keyboard" in sent.reply_markup:
            message["reply_markup"] = sent.reply_markup
        return message


async def _read_params(request: web.Request) -> Json:
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


def _check_text(text: str | None) -> str:
    if not text or not text.strip():
        raise TelegramApiError(400, "Bad Request: message text is empty")
    if _utf16_len(text) > MAX_TEXT:
        raise TelegramApiError(400, "Bad Request: message is too long")
    return text


def _check_markup(markup: Any) -> Json | None:
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


def _commands_key(p: _Params) -> str:
    scope = p.json_value("scope") or {"type": "default"}
    return f"{json.dumps(scope, sort_keys=True)}|{p.text('language_code') or ''}"


def _update_type(update: Json) -> str:
    return next((key for key in update if key != "update_id"), "")


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _prove_listening(host: str, port: int) -> None:
    """Connect to our own socket before saying "started" (as aiosmtpd's controller does)."""
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as exc:
        raise RuntimeError(
            f"Telegram simulator did not accept a connection on {host}:{port} within {READY_TIMEOUT}s: "
            f"{exc}; is the port firewalled or the event loop blocked?"
        ) from exc
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
