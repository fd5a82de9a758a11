"""The metrics listener (``[metrics] listen``): ``/metrics`` for Prometheus, and the probes.

The probes are shared with the HTTP API (``daemon.api.http_api`` answers them before its token check):
``/healthz`` is 200 while the process answers at all; ``/readyz`` is 200 when the database answers
and delivery is not paused, else 503 with ``{"ready": false, "reason": ...}`` (``daemon.api.health``).
No token is asked for here: the listener is separate from the API and on loopback by default.
It runs behind the same guard as the HTTP API (``daemon.api.http_guard``: a connection cap, header
and body deadlines), so a flood of half-open connections cannot starve the daemon through it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web

from daemon.api.health import PROBES, probe
from daemon.api.http_guard import Listener, ListenerLimits
from daemon.config import MetricsConfig
from daemon.core.errors import FnotifyError

if TYPE_CHECKING:
    from daemon.runtime.metrics import Metrics

log = logging.getLogger(__name__)

TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
"""What ``generate_latest`` writes; every Prometheus version reads it (the client's newer default
content type, version=1.0.0, is not understood by Prometheus 2)."""


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

    def __init__(self, metrics: Metrics, config: MetricsConfig, limits: ListenerLimits, *,
                 shutdown_timeout: float = 10.0) -> None:
        self.config = config
        host, port = config.address
        self.listener = Listener(build_metrics_app(metrics), host, port, limits, name="metrics",
                                 shutdown_timeout=shutdown_timeout)
        self._started = False

    async def start(self) -> None:
        try:
            await self.listener.start()
        except OSError as exc:
            raise FnotifyError(f"cannot serve metrics on {self.config.listen}: {exc.strerror}; "
                               "change [metrics] listen or stop whatever holds the port") from None
        self._started = True
        log.info("metrics listening on %s/metrics", self.url)

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) actually bound; only while started."""
        return self.listener.address

    @property
    def url(self) -> str:
        return self.listener.url

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self.listener.stop()
