"""The Bot API calls the daemon makes itself (sendMessage, getMe), over one reused httpx client.

JSON goes in; Telegram's envelope comes out and is read here, the only place that does so for the
Telegram channel::

    {"ok": true, "result": ...}                         the result
    {"ok": false, "error_code": 429, "description": ..., "parameters": {"retry_after": N}}
                                                        TransientError(retry_after=N, rate_limited=True)
    error_code 403 (blocked, kicked, deactivated...)    PermanentError, blocked=True when the user
                                                        blocked the bot, kicked it or was deactivated
    400, 404, 413, a group migrated to a supergroup     PermanentError (chat not found, text too long...;
                                                        a 404 means api_base is wrong: retrying cannot help)
    401                                                 PermanentError: the token was rejected
    5xx, any other error, an unreadable answer,
    timeouts, connection errors                         TransientError

The error code is the envelope's ``error_code`` (the HTTP status when there is none). The texts are
the ones the daemon wrote when aiogram sent its messages. They never contain the bot token: the
request URL is ``{api_base}/bot<token>/<method>``, and every text that could quote it is scrubbed.

aiogram stays for the in-daemon bot (``bot/``): importing it costs seconds and ~130 MB, which the
send path, start-up and ``fnotify check`` no longer pay.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Mapping
from typing import Any

import httpx

from daemon.core.errors import ConfigError, PermanentError, TransientError

MASK = "[REDACTED]"
USER_AGENT = "failover-notify/0.1"
CONNECTIONS = 100
"""Connections to the Bot API at most (aiogram's session allowed as many)."""
PER_CLIENT = 4
"""Connections per httpx client: the ``CONNECTIONS`` are spread over several clients of this size.
httpcore's pool visits every connection it holds on each request and again on each release (a
readability poll per idle one, and a count of all of them per idle one): at 100 connections in one
pool that was a third of the daemon's CPU per Telegram send (py-spy); CPU per send, 100 in one
pool : pools of 10 : pools of 4 was about 6.1 : 2.7 : 2.3 ms on this (loaded) machine."""
_BOT_SEGMENT = re.compile(r"/bot[^/\s]*/")
_BLOCKED_MARKERS = ("blocked", "kicked", "deactivated")

BotApiError = TransientError | PermanentError


def scrub_token(text: str, token: str) -> str:
    """``text`` without the bot token: every occurrence, and every ``/bot<anything>/`` URL segment."""
    if token:
        text = text.replace(token, MASK)
    return _BOT_SEGMENT.sub(f"/bot{MASK}/", text)


def check_token(token: str) -> None:
    """Refuse a token that is not ``<digits>:<secret>`` (aiogram's rule), without echoing it."""
    left, sep, right = token.partition(":")
    if not sep or not left.isdigit() or not right or any(ch.isspace() for ch in token):
        raise ConfigError("[telegram] token: not a bot token (expected <digits>:<secret>)")


def api_error(code: int, description: str, parameters: Mapping[str, Any] | None = None) -> BotApiError:
    """The ChannelError for one refusal from the Bot API (pure: tested row by row)."""
    parameters = parameters or {}
    retry_after = _positive_number(parameters.get("retry_after"))
    if retry_after is not None:
        return TransientError(f"Telegram rate limit: retry after {retry_after}s", retry_after=retry_after,
                              rate_limited=True)
    migrated_to = parameters.get("migrate_to_chat_id")
    if isinstance(migrated_to, int) and not isinstance(migrated_to, bool) and migrated_to:
        return PermanentError(f"Telegram refused: the group has been migrated to a supergroup with id {migrated_to}"
                              f" ({description})")
    if code == 403:
        blocked = any(marker in description.lower() for marker in _BLOCKED_MARKERS)
        return PermanentError(f"Telegram refused: {description}", blocked=blocked)
    if code == 401:
        return PermanentError("bot token rejected (401 Unauthorized)")
    if code == 404:
        return PermanentError(f"Telegram answered 404 ({description}): is [telegram] api_base right?")
    if code in (400, 413):
        return PermanentError(f"Telegram refused: {description}")
    if code >= 500:
        return TransientError(f"Telegram server error: {description}")
    return TransientError(f"Telegram error: {description}")


def read_answer(status: int, content: bytes) -> Any:
    """The ``result`` of one Bot API answer; raises the ChannelError a refusal means."""
    try:
        data = json.loads(content)
    except ValueError:  # includes a body that is not UTF-8
        raise TransientError("unreadable answer from the Bot API: Failed to decode object") from None
    if not isinstance(data, dict) or not isinstance(data.get("ok"), bool):
        raise TransientError("unreadable answer from the Bot API: Failed to deserialize object")
    if data["ok"] and 200 <= status < 300:
        return data.get("result")
    code = data.get("error_code")
    if not isinstance(code, int) or isinstance(code, bool):
        code = status
    description = data.get("description")
    parameters = data.get("parameters")
    raise api_error(code, description if isinstance(description, str) else f"error {code}",
                    parameters if isinstance(parameters, dict) else None)


class BotApi:
    """``call(method, params)`` against ``{api_base}/bot<token>/``; ``aclose()`` when done."""

    def __init__(self, api_base: str, token: str, *, timeout: float, connections: int = CONNECTIONS) -> None:
        check_token(token)
        self._token = token
        self._base = f"{api_base.rstrip('/')}/bot{token}/"
        self._timeout = timeout
        # one TLS context for all the clients (httpx's default, loading the CA bundle, which costs
        # more than the client itself); the clients are made when first needed
        self._tls = httpx.create_ssl_context()
        self._sizes = [min(PER_CLIENT, connections - start) for start in range(0, connections, PER_CLIENT)]
        self._clients: list[httpx.AsyncClient | None] = [None] * len(self._sizes)
        # one token per connection, naming its client: a request holding one never waits inside
        # httpcore's pool (which rescans every waiting request on each release); the queue is here,
        # as the SMS adapter's semaphore. Last in, first out: at low load the same few clients (and
        # their warm connections) serve, and the others are not even made
        self._free: asyncio.LifoQueue[int] = asyncio.LifoQueue()
        for index in reversed(range(len(self._sizes))):
            for _ in range(self._sizes[index]):
                self._free.put_nowait(index)

    def _client(self, index: int) -> httpx.AsyncClient:
        client = self._clients[index]
        if client is None:
            size = self._sizes[index]
            client = self._clients[index] = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout), verify=self._tls, headers={"User-Agent": USER_AGENT},
                limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
            )
        return client

    async def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """POST ``params`` as JSON to ``method``; the answer's ``result``, or a ChannelError.
        ``timeout`` bounds the whole call, as aiogram's session did (httpx's bounds each read)."""
        index = await self._free.get()
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._client(index).post(self._base + method, json=params or {})
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise TransientError("network error: Request timeout error") from exc
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise TransientError(scrub_token(f"network error: {detail}", self._token)) from exc
        finally:
            self._free.put_nowait(index)
        try:
            return read_answer(response.status_code, response.content)
        except (TransientError, PermanentError) as exc:
            # a description may quote the request (a proxy's error page, say): mask the token
            scrubbed = scrub_token(str(exc), self._token)
            if isinstance(exc, TransientError):
                raise TransientError(scrubbed, retry_after=exc.retry_after, rate_limited=exc.rate_limited) from None
            raise PermanentError(scrubbed, blocked=exc.blocked) from None

    async def aclose(self) -> None:
        await asyncio.gather(*(client.aclose() for client in self._clients if client is not None))


def _positive_number(value: object) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if 0 < value < math.inf else None
