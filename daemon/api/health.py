"""What a load balancer and the ``health`` reply ask: is the daemon ready, and how is each channel doing.

Readiness (``/readyz`` on the HTTP API and on the metrics listener): the database answers a read
within READY_TIMEOUT seconds and delivery is not paused. Liveness (``/healthz``) needs nothing: a
process that can answer is alive. The rest is pure arithmetic for the ``health`` reply: per-minute
buckets aligned to the minute and nearest-rank latency percentiles.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web

    from daemon.core.engine import Engine
    from daemon.core.store import Store

READY_TIMEOUT = 2.0
SERIES_STEP = 60.0  # seconds per bucket of the ``health`` reply's series
SERIES_BUCKETS = 60  # the last hour, the current (partial) minute last


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"ready": self.ready} if self.ready else {"ready": False, "reason": self.reason}


async def readiness(store: Store, engine: Engine, timeout: float = READY_TIMEOUT) -> Readiness:
    """Ready to take and deliver notifications? The database first: paused or not, a daemon whose
    database does not answer cannot take a send."""
    try:
        async with asyncio.timeout(timeout):
            await store.ping()
    except TimeoutError:
        return Readiness(False, f"the database did not answer within {timeout:g} s")
    except Exception as exc:  # StorageError, sqlite3.Error: whatever it is, this daemon is not ready
        return Readiness(False, f"the database does not answer: {exc}")
    if engine.paused:
        return Readiness(False, "delivery is paused (fnotify resume)")
    return Readiness(True)


def series_start(now: datetime, step: float = SERIES_STEP, buckets: int = SERIES_BUCKETS) -> datetime:
    """Start of the first bucket: buckets are aligned to ``step`` and the last one holds ``now``."""
    ts = now.timestamp()
    return now - timedelta(seconds=ts % step + step * (buckets - 1))


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of unsorted ``values``; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_ms(durations: Sequence[float]) -> dict[str, Any]:
    """p50 / p95 of attempt durations (seconds) in milliseconds, and how many attempts they cover."""
    p50, p95 = percentile(durations, 50), percentile(durations, 95)
    return {"p50": None if p50 is None else round(p50 * 1000, 1),
            "p95": None if p95 is None else round(p95 * 1000, 1), "samples": len(durations)}


PROBES = frozenset({"/healthz", "/readyz"})


async def probe(path: str, store: Store, engine: Engine) -> web.Response:
    """The answer to ``/healthz`` or ``/readyz`` (``path`` must be one of PROBES)."""
    from aiohttp import web  # only the HTTP listeners probe: the daemon imports aiohttp only with them

    if path == "/healthz":
        return web.json_response({"alive": True})
    ready = await readiness(store, engine)
    return web.json_response(ready.to_json(), status=200 if ready.ready else 503)
