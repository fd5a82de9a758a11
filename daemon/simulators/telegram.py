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

The Bot API's objects, parameters and error texts are in ``telegram_api``; the control routes in
``telegram_control``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from aiohttp import web

from daemon.simulators import telegram_api as api
from daemon.simulators import telegram_control
from daemon.simulators.faults import FaultPlan
from daemon.simulators.flood import DEFAULT_BURST, FloodControl
from daemon.simulators.loopback import READY_TIMEOUT, serve_loopback
from daemon.simulators.telegram_api import (
    DEFAULT_UPDATE_TYPES,
    MAX_TEXT,
    NOT_MODIFIED,
    Json,
    Params,
    SentMessage,
    TelegramApiError,
)

# public names kept importable from here since the Bot API shapes moved to telegram_api
__all__ = ["DEFAULT_UPDATE_TYPES", "MAX_TEXT", "NOT_MODIFIED", "READY_TIMEOUT", "Json", "SentMessage",
           "TelegramApiError", "TelegramSimulator"]

log = logging.getLogger(__name__)


class _DropConnection(Exception):
    """Raised after the transport was closed: nothing is to be answered."""


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
        self.poll_conflicts = 0  # 409s answered to a poller still connected: two bot instances polling at once
        self._changed = asyncio.Event()
        self._closing = False
        self._runner: web.AppRunner | None = None
        # Bot API method names are case-insensitive: "sendMessage" -> "sendmessage" -> _api_send_message
        self._methods: dict[str, Callable[[Params], Awaitable[Any]]] = {
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
        if self._runner is not None:
            raise RuntimeError("Telegram simulator already started")
        self._closing = False
        self._runner, self.base_url = await serve_loopback(self.make_app(), host, port, "Telegram simulator")
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
        message = api.user_message(next(self._ids), self._user(chat_id), self._chat(chat_id), int(time.time()), text)
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
        change = api.member_change(status, self._bot_user(), self._chat(chat_id), self._user(chat_id), int(time.time()))
        return self.push_update({"my_chat_member": change})

    # --- the control API (its routes are in daemon.simulators.telegram_control) ------------

    def control_routes(self) -> web.RouteTableDef:
        """POST /faults, /updates, /user_sends, /press_button, /member_status; GET and DELETE /faults;
        GET /messages (see ``daemon.simulators.telegram_control``)."""
        return telegram_control.control_routes(self)

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
            params = Params(await api.read_params(request))
            if handler == self._api_send_message:
                await self._apply_fault(request, params.chat_id())
            result = await handler(params)
        except TelegramApiError as exc:
            if exc.code == 409 and "other getUpdates" in exc.description and request.transport is not None \
                    and not request.transport.is_closing():
                self.poll_conflicts += 1  # a poll cut off by a dead or stopped poller's successor is no conflict
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
        raise api.fault_error(rule.kind, rule.retry_after)

    def limit_rate(self, rate_global: float = 30.0, rate_per_chat: float = 1.0, burst: float = DEFAULT_BURST) -> None:
        """Enforce flood limits on sendMessage from now on: beyond them a 429 with retry_after, counted
        in ``flood.refusals``."""
        self.flood = FloodControl(rate_global, rate_per_chat, burst=burst)

    def _pace(self, chat_id: int) -> None:
        """Telegram's flood control (when ``limit_rate`` turned it on): a 429 when the bot sends too fast."""
        if self.flood is not None and (seconds := self.flood.check(chat_id)) is not None:
            raise api.too_many_requests(seconds)

    # --- Bot API methods -------------------------------------------------------------------

    async def _api_get_me(self, p: Params) -> Json:
        return api.bot_profile(self._bot_user())

    async def _api_send_message(self, p: Params) -> Json:
        chat_id = p.chat_id()
        if chat_id in self.unknown_chats:
            raise TelegramApiError(400, "Bad Request: chat not found")
        if chat_id in self.blocked_chats:
            raise TelegramApiError(403, "Forbidden: bot was blocked by the user")
        text = api.check_text(p.text("text"))
        markup = api.check_markup(p.json_value("reply_markup"))
        self._pace(chat_id)
        sent = SentMessage(chat_id, next(self._ids), text, p.text("parse_mode"), markup, int(time.time()))
        self.messages.append(sent)
        self._wake()
        return self._message_json(sent)

    async def _api_edit_message_text(self, p: Params) -> Json:
        sent = self._find(p.chat_id(), p.integer("message_id"))
        text, markup = api.check_text(p.text("text")), api.check_markup(p.json_value("reply_markup"))
        if (text, markup) == (sent.text, sent.reply_markup):
            raise TelegramApiError(400, NOT_MODIFIED)
        return self._edit(sent, text=text, parse_mode=p.text("parse_mode"), reply_markup=markup)

    async def _api_edit_message_reply_markup(self, p: Params) -> Json:
        sent = self._find(p.chat_id(), p.integer("message_id"))
        if (markup := api.check_markup(p.json_value("reply_markup"))) == sent.reply_markup:
            raise TelegramApiError(400, NOT_MODIFIED)
        return self._edit(sent, reply_markup=markup)

    async def _api_answer_callback_query(self, p: Params) -> bool:
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

    async def _api_get_updates(self, p: Params) -> list[Json]:
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
            self._updates = [u for u in self._updates if api.update_type(u) in self._allowed]
            if self._updates or self._closing or loop.time() >= deadline:
                return self._updates[:limit]
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await changed.wait()
            if generation != self._polls:
                raise TelegramApiError(409, "Conflict: terminated by other getUpdates request; make sure "
                                       "that only one bot instance is running")

    async def _api_set_my_commands(self, p: Params) -> bool:
        commands = p.json_value("commands")
        if not isinstance(commands, list) or not all(isinstance(c, dict) for c in commands):
            raise TelegramApiError(400, "Bad Request: can't parse commands JSON object")
        self.commands[api.commands_key(p)] = commands
        return True

    async def _api_get_my_commands(self, p: Params) -> list[Json]:
        return self.commands.get(api.commands_key(p), [])

    async def _api_delete_my_commands(self, p: Params) -> bool:
        self.commands.pop(api.commands_key(p), None)
        return True

    async def _api_set_webhook(self, p: Params) -> bool:
        url = p.text("url") or ""
        self.webhook = {"url": url, "secret_token": p.text("secret_token"),
                        "allowed_updates": p.json_value("allowed_updates")} if url else {}
        if p.flag("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _api_delete_webhook(self, p: Params) -> bool:
        self.webhook = {}
        if p.flag("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _api_get_webhook_info(self, p: Params) -> Json:
        return api.webhook_info(self.webhook, len(self._updates))

    async def _api_close(self, p: Params) -> bool:
        return True

    async def _api_log_out(self, p: Params) -> bool:
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
        return api.bot_user(self.bot_id, self.username)

    def _user(self, user_id: int) -> Json:
        return api.user(user_id, *self._users.get(user_id, ("Test", None)))

    def _chat(self, chat_id: int) -> Json:
        return api.chat(chat_id, self._user(chat_id))

    def _message_json(self, sent: SentMessage) -> Json:
        return api.bot_message(sent, self._bot_user(), self._chat(sent.chat_id))
