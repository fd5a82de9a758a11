"""The daemon's httpx clients (Bot API, SMS): httpx's API, aiohttp's connections underneath.

Each client is an ``httpx.AsyncClient`` whose transport is httpx-aiohttp's ``AiohttpTransport``
(``daemon.channels.http_transport``): our code builds httpx requests and reads httpx responses and
httpx exceptions, while the connection pool and the HTTP/1.1 parsing are aiohttp's, at about a third
of httpcore's CPU per request (measured against the Telegram simulator; see CHANGELOG).

Importing aiohttp costs ~300 ms, which the daemon must not pay on its way to READY (issue 14), nor a
client process at all. So nothing here imports it: ``preload()`` starts the import on a worker thread
once the daemon is ready, and ``make_client()`` awaits it (starting it itself when nothing has, as in
``fnotify check``). Between ``hold()`` and ``preload()`` (the daemon's start) a request on that event
loop waits for READY instead of importing aiohttp beside the start-up.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import weakref
from types import ModuleType

import httpx

log = logging.getLogger(__name__)

TRANSPORT_MODULE = "daemon.channels.http_transport"
USER_AGENT = "failover-notify/0.1"

_held: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Event] = weakref.WeakKeyDictionary()
_loading: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Future[ModuleType]] = (
    weakref.WeakKeyDictionary())
_loaded: ModuleType | None = None
"""The transport module once its import has finished. Not ``sys.modules``: a module is there from the
moment its import starts, so a request there would find it half made while the worker thread runs it."""


def hold() -> None:
    """The daemon is starting on this event loop: requests wait for ``preload()`` to import aiohttp."""
    _held.setdefault(asyncio.get_running_loop(), asyncio.Event())


def release() -> None:
    """The daemon's start failed, or it has no HTTP channel: requests load aiohttp themselves again."""
    held = _held.pop(asyncio.get_running_loop(), None)
    if held is not None:
        held.set()


def preload() -> None:
    """Start importing aiohttp on a worker thread (the daemon at READY; idempotent); lets held requests on."""
    loop = asyncio.get_running_loop()
    if _loaded is None and loop not in _loading:
        # a worker thread, so the loop serves clients meanwhile; an import already running elsewhere
        # (another loop's thread) holds the module's import lock, and this one waits for it
        loading = _loading[loop] = asyncio.ensure_future(asyncio.to_thread(importlib.import_module, TRANSPORT_MODULE))
        loading.add_done_callback(_done)
    release()


def _done(loading: asyncio.Future[ModuleType]) -> None:
    global _loaded
    if loading.cancelled():
        return
    error = loading.exception()
    if error is None:
        _loaded = loading.result()
        return
    log.error("cannot load the HTTP transport (aiohttp): %s", error)
    _loading.pop(loading.get_loop(), None)  # the next request tries again


async def transport_module() -> ModuleType:
    """``daemon.channels.http_transport``, imported off the event loop the first time."""
    if _loaded is not None:
        return _loaded
    loop = asyncio.get_running_loop()
    held = _held.get(loop)
    if held is not None:
        await held.wait()
    preload()
    loading = _loading.get(loop)
    if loading is None:  # finished meanwhile
        assert _loaded is not None
        return _loaded
    return await asyncio.shield(loading)  # a cancelled request leaves the import to the next one


async def make_client(*, timeout: float, connections: int, verify: object = True) -> httpx.AsyncClient:
    """An httpx client over aiohttp: every call bounded by ``timeout`` seconds (connect, read, and the
    wait for a pooled connection), at most ``connections`` connections, all of them kept alive.
    ``verify``: an ``ssl.SSLContext`` to share one among clients (loading the CA bundle costs more
    than the client), else httpx's meaning. Proxies from the environment apply as with httpx's own
    transport (``HTTPS_PROXY``, ``NO_PROXY``...)."""
    module = await transport_module()
    client: httpx.AsyncClient = module.make_client(timeout=timeout, connections=connections, verify=verify,
                                                   headers={"User-Agent": USER_AGENT})
    return client


class LazyClient:
    """One ``make_client`` client, made at the first ``get()`` (aiohttp is loaded then). Calls that overlap
    the first one's wait for the import make one each; the first kept wins, the others are closed."""

    def __init__(self, *, timeout: float, connections: int, verify: object = True) -> None:
        self._timeout, self._connections, self._verify = timeout, connections, verify
        self.made: httpx.AsyncClient | None = None

    async def get(self) -> httpx.AsyncClient:
        if self.made is not None:
            return self.made
        client = await make_client(timeout=self._timeout, connections=self._connections, verify=self._verify)
        if self.made is None:
            self.made = client
        else:
            await client.aclose()
        return self.made

    async def aclose(self) -> None:
        if self.made is not None:
            await self.made.aclose()
