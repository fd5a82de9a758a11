"""The metrics listener (``[metrics] listen``): ``/metrics`` for Prometheus, and the probes.

The probes are shared with the HTTP API (``daemon.http_api`` answers them before its token check):
``/healthz`` is 200 while the process answers at all; ``/readyz`` is 200 when the database answers
and delivery is not paused, else 503 with ``{"ready": false, "reason": ...}`` (``daemon.health``).
No token is asked for here: the listener is separate from the API and on loopback by default.
It uses aiohttp's default server limits; it reads no request body.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web

from daemon.config import MetricsConfig
from daemon.errors import FnotifyError
from daemon.health import readiness

if TYPE_CHECKING:
    from daemon.engine import Engine
    from daemon.metrics import Metrics
    from daemon.storage.base import Store

log = logging.getLogger(__name__)

PROBES = frozenset({"/healthz", "/readyz"})
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
"""What ``generate_latest`` writes; every Prometheus version reads it (the client's newer default
content type, version=1.0.0, is not understood by Prometheus 2)."""


async def probe(path: str, store: Store, engine: Engine) -> web.Response:
    """The answer to ``/healthz`` or ``/readyz`` (``path`` must be one of PROBES)."""
    if path == "/healthz":
        return web.json_response({"alive": True})
    ready = await readiness(store, engine)
    return web.json_response(ready.to_json(), status=200 if ready.ready else 503)


def build_metrics_app(metrics: Metrics) -> web.Application:
    async def scrape(request: web.Request) -> web.Response:
        return web.Response(body=await metrics.render(), headers={"Content-Type": TEXT_FORMAT})

    async def probes(request: web.Request) -> web.Response:
        return await probe(request.path, metrics.store, metrics.engine)

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    for path in sorted(PROBES):
        app.router.add_get(path, probes)
    return app


class MetricsServer:
    """Serves ``build_metrics_app`` on ``[metrics] listen``; ``address`` is the bound one (port 0: any)."""

    def __init__(self, metrics: Metrics, config: MetricsConfig, *, shutdown_timeout: float = 10.0) -> None:
        self.config = config
        self._runner = web.AppRunner(build_metrics_app(metrics), access_log=None, shutdown_timeout=shutdown_timeout)
        self._started = False

    async def start(self) -> None:
        host, port = self.config.address
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, host, port).start()
        except OSError as exc:
            await self._runner.cleanup()
            raise FnotifyError(f"cannot serve metrics on {self.config.listen}: {exc.strerror}; "
                               "change [metrics] listen or stop whatever holds the port") from None
        self._started = True
        log.info("metrics listening on %s/metrics", self.url)

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) actually bound; only while started."""
        host, port = self._runner.addresses[0][:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self._runner.cleanup()
