"""httpx over aiohttp (httpx-aiohttp's ``AiohttpTransport``), with aiohttp's errors told apart.

Imported on a worker thread by ``daemon.channels.http_client`` (it costs ~300 ms: aiohttp), never on
the way to READY nor in a client process.

httpx-aiohttp 0.2.0 maps aiohttp's errors onto httpx's through a table in which
``aiohttp.ClientConnectionError -> httpx.ConnectTimeout`` matches before the specific rows can win,
so a refused connection (``ClientConnectorError``), a server hanging up (``ServerDisconnectedError``)
and a reset (``ClientOSError``) all come out as ``ConnectTimeout`` with aiohttp's text; errors missing
from the table (a malformed answer: ``ClientResponseError``) come out as aiohttp's own. Here the
aiohttp error beneath (``__cause__``) is translated again, to what httpx's own transport raises::

    ConnectionTimeoutError (connecting, or waiting for a pooled connection)   httpx.ConnectTimeout
    ServerTimeoutError (no answer within the read timeout)                    httpx.ReadTimeout
    ClientConnectorError (refused, unresolvable, TLS refused)                 httpx.ConnectError
    ServerDisconnectedError (closed before a whole answer head)               httpx.RemoteProtocolError
    ClientPayloadError (closed mid-body, broken chunking)                     httpx.RemoteProtocolError
    ClientResponseError (an answer that is not HTTP)                          httpx.RemoteProtocolError
    ClientOSError (reset, broken pipe)                                        httpx.ReadError
    any other aiohttp.ClientError                                             httpx.TransportError

Timeouts: httpx's ``Timeout`` reaches aiohttp as ``ClientTimeout(sock_connect=connect,
sock_read=read, connect=pool)`` (aiohttp's ``connect`` covers the wait for a pooled connection and
the connecting); httpx's write timeout has no counterpart (the Bot API bounds each whole call itself).
Limits: ``max_connections`` is aiohttp's connector limit; every idle connection is kept, for
``keepalive_expiry``.
"""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

__all__ = ["HonestTransport", "make_client", "translate"]


def _connect_failure(exc: aiohttp.ClientConnectorError) -> str:
    where = f"{exc.host}:{exc.port}"
    cause = exc.os_error
    if isinstance(cause, ConnectionRefusedError) or getattr(cause, "errno", None) == errno.ECONNREFUSED:
        return f"connection refused by {where}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve {exc.host} ({cause.strerror or cause})"
    if isinstance(exc, aiohttp.ClientSSLError):
        return str(exc)
    return f"cannot connect to {where} ({cause.strerror or cause})"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def translate(exc: BaseException) -> httpx.TransportError | None:
    """The httpx error that the aiohttp error ``exc`` is (None when it is not aiohttp's)."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(str(exc))  # "Connection timeout to host <url>"
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(str(exc))  # "Timeout on reading data from socket"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(_connect_failure(exc))
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError("Server disconnected without sending a complete answer")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(f"the connection ended mid-answer ({_one_line(exc)})")
    if isinstance(exc, aiohttp.ClientResponseError):  # its text would quote the URL: the message only
        return httpx.RemoteProtocolError(f"not an HTTP answer ({_one_line(exc.message)})")
    if isinstance(exc, aiohttp.ClientOSError):
        return httpx.ReadError(f"{exc.strerror or exc}")
    if isinstance(exc, aiohttp.ClientError):
        return httpx.TransportError(f"{type(exc).__name__}: {exc}")
    return None


def _honest(exc: Exception) -> tuple[Exception | None, BaseException | None]:
    """The httpx error ``exc``'s aiohttp cause stands for (None: ``exc`` says it already), and that cause."""
    cause = _aiohttp_cause(exc)
    return (translate(cause) if cause is not None else None), cause


def _aiohttp_cause(exc: Exception) -> BaseException | None:
    """The aiohttp error behind ``exc``: itself, or the one httpx-aiohttp wrapped (``__cause__``)."""
    return exc if isinstance(exc, aiohttp.ClientError) else exc.__cause__


class _Body(httpx.AsyncByteStream):
    """The answer's body; errors while reading it translated as the request's are."""

    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except (httpx.TransportError, aiohttp.ClientError) as exc:
            honest, cause = _honest(exc)
            if honest is None:
                raise
            raise honest from cause

    async def aclose(self) -> None:
        await self._inner.aclose()


class HonestTransport(AiohttpTransport):
    """``AiohttpTransport`` raising the httpx error each aiohttp error stands for (see the table above)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await super().handle_async_request(request)
        except (httpx.TransportError, aiohttp.ClientError) as exc:
            honest, cause = _honest(exc)
            if honest is None:
                raise
            raise honest from cause
        response.stream = _Body(cast(httpx.AsyncByteStream, response.stream))  # AiohttpResponseStream
        return response


_DEFAULT_LIMITS = httpx.Limits()


class _Cookies(httpx.Cookies):
    """httpx's cookie jar, which skips answers that set no cookie: httpx hands every answer to the
    standard library's cookie jar through an ``email.message`` and a ``urllib`` request copy: ~60 us
    of the ~700 us of CPU a Bot API call costs (A/B against the simulator), for answers that never
    set a cookie."""

    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers:
            super().extract_cookies(response)


class _Client(httpx.AsyncClient):
    """httpx's client, with ``HonestTransport`` wherever httpx would make its own transport: for
    proxies from the environment too (as httpx-aiohttp's own ``HttpxAiohttpClient`` does)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cookies = self.cookies  # into _Cookies, through the setter below

    @property
    def cookies(self) -> httpx.Cookies:
        return self._cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        self._cookies = _Cookies(cookies)

    def _init_transport(self, verify: Any = True, cert: Any = None, trust_env: bool = True, http1: bool = True,
                        http2: bool = False, limits: httpx.Limits = _DEFAULT_LIMITS,
                        transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncBaseTransport:
        if transport is not None:
            return transport
        return HonestTransport(verify=verify, cert=cert, trust_env=trust_env, limits=limits)

    def _init_proxy_transport(self, proxy: httpx.Proxy, verify: Any = True, cert: Any = None,
                              trust_env: bool = True, http1: bool = True, http2: bool = False,
                              limits: httpx.Limits = _DEFAULT_LIMITS) -> httpx.AsyncBaseTransport:
        return HonestTransport(verify=verify, cert=cert, trust_env=trust_env, limits=limits, proxy=proxy)


def make_client(*, timeout: float, connections: int, verify: Any, headers: Mapping[str, str]) -> httpx.AsyncClient:
    """See ``daemon.channels.http_client.make_client``."""
    return _Client(timeout=httpx.Timeout(timeout), verify=verify, headers=headers,
                   limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections))
