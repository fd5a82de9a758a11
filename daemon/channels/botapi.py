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

from daemon.channels.http_client import USER_AGENT, LazyClient
from daemon.core.errors import ConfigError, PermanentError, TransientError

MASK = "[REDACTED]"
CONNECTIONS = 100
"""Connections to the Bot API at most (aiogram's session allowed as many), in one pool: aiohttp's
takes and returns a connection in constant time however many it holds (httpcore's visited every
one on each request and release, which is why there used to be several pools of 4)."""
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
        # httpx's default TLS context, made once (loading the CA bundle costs more than the client)
        self._tls = httpx.create_ssl_context()
        self._client = LazyClient(timeout=timeout, connections=connections, verify=self._tls)  # aiohttp: loaded then
        # what a call needs besides its body, built once, rather than parsing the URL and merging
        # the client's headers, cookies and timeout into each request (httpx's build_request)
        self._urls: dict[str, httpx.URL] = {}
        self._headers = httpx.Headers({"User-Agent": USER_AGENT, "Accept": "*/*",
                                       "Accept-Encoding": "gzip, deflate", "Content-Type": "application/json"})
        self._extensions: dict[str, Any] = {"timeout": httpx.Timeout(timeout).as_dict()}
        # one slot per connection, taken before the call's timeout starts: a call waits here for a
        # connection, not inside the pool where the wait would count against ``timeout``
        self._slots = asyncio.Semaphore(connections)

    async def ready(self) -> None:
        """Have the client made (the first time, once aiohttp is loaded): callers pacing their sends
        await this before taking a turn, so the wait for the import does not bunch paced sends up."""
        await self._client.get()

    def _request(self, method: str, params: Mapping[str, Any] | None) -> httpx.Request:
        url = self._urls.get(method)
        if url is None:
            url = self._urls[method] = httpx.URL(self._base + method)
        body = json.dumps(params or {}, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        return httpx.Request("POST", url, headers=self._headers, content=body, extensions=self._extensions)

    async def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """POST ``params`` as JSON to ``method``; the answer's ``result``, or a ChannelError.
        ``timeout`` bounds the whole call, as aiogram's session did (httpx's bounds each read)."""
        request = self._request(method, params)
        async with self._slots:
            try:
                client = await self._client.get()
                async with asyncio.timeout(self._timeout):
                    response = await client.send(request)
            except TimeoutError as exc:  # the whole call's bound
                raise TransientError(f"network error: timed out after {self._timeout:g} s") from exc
            except httpx.TimeoutException as exc:
                raise TransientError(scrub_token(f"network error: timed out after {self._timeout:g} s"
                                                 f" ({_describe(exc)})", self._token)) from exc
            except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
                raise TransientError(scrub_token(f"network error: {_describe(exc)}", self._token)) from exc
        try:
            return read_answer(response.status_code, response.content)
        except (TransientError, PermanentError) as exc:
            # a description may quote the request (a proxy's error page, say): mask the token
            scrubbed = scrub_token(str(exc), self._token)
            if isinstance(exc, TransientError):
                raise TransientError(scrubbed, retry_after=exc.retry_after, rate_limited=exc.rate_limited) from None
            raise PermanentError(scrubbed, blocked=exc.blocked) from None

    async def aclose(self) -> None:
        await self._client.aclose()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _positive_number(value: object) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if 0 < value < math.inf else None
