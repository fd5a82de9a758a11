"""Prometheus metrics for one daemon, on a registry of its own.

Counters and histograms are fed from the daemon's EventBus (``tap``), so the engine knows nothing of
Prometheus: ``attempt.finished`` counts an attempt and its duration, ``notification.status`` counts
a notification reaching a final status and, when it is ``delivered``, how long it took from the send.
Gauges are read when scraped: attempts in flight, the breakers, paused, and the queue depth, which
comes from the database and is cached for QUEUE_DEPTH_TTL seconds, so a storm of scrapes costs one
query. Held notifications (quiet hours) are not in the queue depth's own series but in one labelled
``status="held"`` beside it: they wait by design, often all night, and counted in the same number they
would fire the queue-growing alert every evening. Names follow Prometheus' conventions: base units
(seconds), ``_total`` on counters, and only bounded labels (channel, outcome, status; never a recipient
or a notification id).

    fnotify_attempts_total{channel,outcome}            attempts finished, by outcome
    fnotify_attempt_duration_seconds{channel}          provider call time (outcomes delivered/retry/failed)
    fnotify_notifications_total{status}                notifications reaching a final status
    fnotify_delivery_seconds                           send to delivered
    fnotify_telegram_rate_limited_total                Telegram 429s (flood control)
    fnotify_queue_depth                                notifications queued or sending
    fnotify_queue_depth{status="held"}                 notifications held for their recipient's quiet hours
    fnotify_in_flight                                  attempts running now
    fnotify_breaker_open{channel}                      1 while a channel's breaker is open or half-open
    fnotify_paused                                     1 while delivery is paused
    process_*, python_*                                the client library's standard process metrics
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from daemon.core.breaker import BreakerState
from daemon.core.failover import RATE_LIMITED_NOTE
from daemon.core.models import FINAL_STATUSES, TIMED_OUTCOMES, Channel, Outcome, Status, utcnow

if TYPE_CHECKING:
    from daemon.core.engine import Engine
    from daemon.core.store import Store

log = logging.getLogger(__name__)

QUEUE_DEPTH_TTL = 2.0
ATTEMPT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# a delivery can wait out retries and failover: milliseconds on a good day, an hour on a bad one
DELIVERY_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
EXPORTED = (
    "fnotify_attempts_total", "fnotify_attempt_duration_seconds", "fnotify_notifications_total",
    "fnotify_delivery_seconds", "fnotify_telegram_rate_limited_total", "fnotify_queue_depth",
    "fnotify_in_flight", "fnotify_breaker_open", "fnotify_paused",
)
"""The daemon's own metric names (the dashboard and the alert rules may use only these)."""
_CHANNELS = frozenset(str(c) for c in Channel)
_OUTCOMES = frozenset(str(o) for o in Outcome)


class Metrics:
    """The registry and its instruments; ``observe`` is the EventBus tap, ``render`` the scrape."""

    def __init__(self, engine: Engine, store: Store, *, clock: Callable[[], datetime] = utcnow,
                 monotonic: Callable[[], float] = time.monotonic, queue_depth_ttl: float = QUEUE_DEPTH_TTL) -> None:
        self.engine = engine
        self.store = store
        self.clock = clock
        self.monotonic = monotonic
        self.queue_depth_ttl = queue_depth_ttl
        self.queue_depth: int | None = None  # None: the database did not answer the last time
        self.held = 0  # held for quiet hours, read with queue_depth
        self._depth_read_at: float | None = None
        self._depth_lock = asyncio.Lock()
        # no *_created series: one extra timestamp gauge per counter and histogram series, which Prometheus
        # stores as series of their own and nobody graphs (process-wide; this daemon is the only user)
        disable_created_metrics()  # type: ignore[no-untyped-call]  # the library leaves it unannotated
        self.registry = CollectorRegistry()
        for standard in (ProcessCollector, PlatformCollector, GCCollector):
            standard(registry=self.registry)
        self.attempts = Counter("fnotify_attempts", "Attempts finished, by channel and outcome.",
                                ["channel", "outcome"], registry=self.registry)
        self.attempt_seconds = Histogram(
            "fnotify_attempt_duration_seconds", "Time of an attempt's provider call (delivered, retry, failed).",
            ["channel"], buckets=ATTEMPT_BUCKETS, registry=self.registry)
        self.notifications = Counter("fnotify_notifications", "Notifications reaching a final status.",
                                     ["status"], registry=self.registry)
        self.delivery_seconds = Histogram("fnotify_delivery_seconds", "Time from the send to delivered.",
                                          buckets=DELIVERY_BUCKETS, registry=self.registry)
        self.telegram_rate_limited = Counter("fnotify_telegram_rate_limited",
                                             "Telegram sends refused by flood control (HTTP 429).",
                                             registry=self.registry)
        # every series from the start, at zero: rate() and absent-series alerts need them to exist
        for channel in Channel:
            self.attempt_seconds.labels(str(channel))
            for outcome in Outcome:
                self.attempts.labels(str(channel), str(outcome))
        for status in sorted(FINAL_STATUSES):
            self.notifications.labels(str(status))
        self.registry.register(_LiveState(self))

    def observe(self, kind: str, data: Mapping[str, Any]) -> None:
        """The EventBus tap: count what the event says (quick, no I/O)."""
        if kind == "attempt.finished":
            self._attempt(data)
        elif kind == "notification.status":
            self._status(data)

    def _attempt(self, data: Mapping[str, Any]) -> None:
        channel, outcome = data.get("channel"), data.get("outcome")
        if channel not in _CHANNELS or outcome not in _OUTCOMES:
            return
        self.attempts.labels(channel, outcome).inc()
        duration = data.get("duration_ms")
        if outcome in TIMED_OUTCOMES and isinstance(duration, int | float):
            self.attempt_seconds.labels(channel).observe(max(duration, 0) / 1000)
        error = data.get("error") or ""
        if channel == Channel.TELEGRAM and outcome == Outcome.RETRY and error.endswith(RATE_LIMITED_NOTE):
            self.telegram_rate_limited.inc()

    def _status(self, data: Mapping[str, Any]) -> None:
        status = data.get("status")
        if status not in FINAL_STATUSES:  # queued again (a redrive), or still sending
            return
        self.notifications.labels(status).inc()
        created = data.get("created_at")
        if status == Status.DELIVERED and isinstance(created, str):
            waited = (self.clock() - datetime.fromisoformat(created)).total_seconds()
            self.delivery_seconds.observe(max(waited, 0.0))

    async def render(self) -> bytes:
        """The text exposition format, with the queue depth at most ``queue_depth_ttl`` seconds old."""
        await self._refresh_queue_depth()
        return generate_latest(self.registry)

    async def _refresh_queue_depth(self) -> None:
        if self._fresh():
            return
        async with self._depth_lock:  # concurrent scrapes wait for the one query already running
            if self._fresh():
                return
            try:
                counts = await self.store.counts_by_status()
            except Exception as exc:  # the gauge goes missing rather than showing a stale number
                log.warning("metrics: cannot read the queue depth: %s", exc)
                self.queue_depth = None
            else:
                self.queue_depth = counts.get(Status.QUEUED, 0) + counts.get(Status.SENDING, 0)
                self.held = counts.get(Status.HELD, 0)
            self._depth_read_at = self.monotonic()

    def _fresh(self) -> bool:
        read_at = self._depth_read_at
        return read_at is not None and self.monotonic() - read_at < self.queue_depth_ttl


class _LiveState(Collector):
    """The gauges, read at scrape time from the engine (and the cached queue depth)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return []  # no collect() at registration: the engine may not have started yet

    def collect(self) -> Iterable[Metric]:
        engine = self.metrics.engine
        if self.metrics.queue_depth is not None:
            # the series without labels stays what it always was (the alert rules and dashboards read it);
            # held is a labelled series of the same gauge
            depth = Metric("fnotify_queue_depth", "Notifications queued or sending; status=\"held\": held for the "
                           "recipient's quiet hours (from the database).", "gauge")
            depth.add_sample("fnotify_queue_depth", {}, self.metrics.queue_depth)
            depth.add_sample("fnotify_queue_depth", {"status": str(Status.HELD)}, self.metrics.held)
            yield depth
        yield GaugeMetricFamily("fnotify_in_flight", "Attempts running now.", value=engine.in_flight)
        yield GaugeMetricFamily("fnotify_paused", "1 while delivery is paused (fnotify pause).",
                                value=int(engine.paused))
        breakers = GaugeMetricFamily("fnotify_breaker_open", "1 while the channel's circuit breaker is not closed "
                                     "(open: skipped as down; half-open: one probe let through).", labels=["channel"])
        for channel in Channel:
            breakers.add_metric([str(channel)], int(engine.breakers[channel].state is not BreakerState.CLOSED))
        yield breakers
