"""Prometheus metrics and the probes: the real daemon against the loopback simulators, scraped over
HTTP on its own listener (``[metrics] listen = "127.0.0.1:0"``), as Prometheus would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from daemon.runtime.app import Daemon
from daemon.simulators.suite import SimulatorSuite
from tests.conftest import RunningDaemon, make_config, start_daemon, stop_daemon
from tests.test_delivery import CHAT, EMAIL, add_ann, deliver, log_of

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
METRICS = {"enabled": True, "listen": "127.0.0.1:0"}
TOKEN = "metrics-test-token-0123456789"


def metrics_url(daemon: RunningDaemon) -> str:
    server = daemon.daemon.metrics_server
    assert server is not None
    return server.url


async def scrape(daemon: RunningDaemon, client: httpx.AsyncClient | None = None) -> Samples:
    if client is None:
        async with httpx.AsyncClient(timeout=10) as own:
            return await scrape(daemon, own)
    response = await client.get(f"{metrics_url(daemon)}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
async def watched(short_tmp: Path, suite: SimulatorSuite) -> AsyncIterator[RunningDaemon]:
    """The simulators' daemon with metrics on a free port and the HTTP API on another."""
    running = await start_daemon(make_config(short_tmp, **suite.config_sections(), metrics=METRICS,
                                             http={"enabled": True, "listen": "127.0.0.1:0", "tokens": [TOKEN]}))
    yield running
    await stop_daemon(running)


async def test_a_failover_scenario_shows_in_the_counters_and_histograms(
    watched: RunningDaemon, suite: SimulatorSuite,
) -> None:
    ann = await add_ann(watched)
    suite.telegram.faults.inject("error", count=1, target=CHAT)
    suite.telegram.faults.inject("latency", count=1, target=CHAT, delay=0.3)
    retried = await deliver(watched, ann, message="retried, then delivered slowly")
    assert log_of(retried) == [("telegram", "retry"), ("telegram", "delivered")]

    suite.telegram.faults.inject("permanent", count=1, target=CHAT)
    suite.smtp.faults.inject("permanent", count=1, target=EMAIL)
    failed_over = await deliver(watched, ann, message="chat not found, mailbox unavailable: SMS")
    assert log_of(failed_over) == [("telegram", "failed"), ("email", "failed"), ("sms", "delivered")]

    suite.telegram.faults.inject("rate_limit", count=1, target=CHAT, retry_after=0.1)
    paced = await deliver(watched, ann, message="flood control, then delivered")
    assert log_of(paced) == [("telegram", "retry"), ("telegram", "delivered")]

    suite.smtp.faults.inject("permanent", count=1, target=EMAIL)
    failed = await deliver(watched, ann, message="email only, refused", chain=["email"])
    assert failed["status"] == "failed"

    samples = await scrape(watched)
    attempts = {(c, o): value(samples, "fnotify_attempts_total", channel=c, outcome=o)
                for c in ("telegram", "email", "sms")
                for o in ("delivered", "retry", "failed", "skipped", "interrupted", "unacknowledged")}
    assert {k: v for k, v in attempts.items() if v} == {
        ("telegram", "retry"): 2, ("telegram", "delivered"): 2, ("telegram", "failed"): 1,
        ("email", "failed"): 2, ("sms", "delivered"): 1,
    }
    assert value(samples, "fnotify_telegram_rate_limited_total") == 1
    assert {s: value(samples, "fnotify_notifications_total", status=s)
            for s in ("delivered", "acknowledged", "failed", "cancelled", "expired")} == {
        "delivered": 3, "acknowledged": 0, "failed": 1, "cancelled": 0, "expired": 0}

    for channel, calls in (("telegram", 5), ("email", 2), ("sms", 1)):
        assert value(samples, "fnotify_attempt_duration_seconds_count", channel=channel) == calls
        assert value(samples, "fnotify_attempt_duration_seconds_bucket", channel=channel, le="+Inf") == calls
    # the one slow Telegram answer (0.3 s) is above the 0.25 s bucket
    assert value(samples, "fnotify_attempt_duration_seconds_sum", channel="telegram") >= 0.3
    assert value(samples, "fnotify_attempt_duration_seconds_bucket", channel="telegram", le="0.25") <= 4
    assert value(samples, "fnotify_delivery_seconds_count") == 3
    assert value(samples, "fnotify_delivery_seconds_sum") >= 0.3 + 0.05  # the backoff, then the slow answer
    assert value(samples, "fnotify_delivery_seconds_bucket", le="0.1") <= 2

    assert value(samples, "fnotify_queue_depth") == 0
    assert value(samples, "fnotify_in_flight") == 0
    assert value(samples, "fnotify_paused") == 0
    assert all(value(samples, "fnotify_breaker_open", channel=c) == 0 for c in ("telegram", "email", "sms"))
    assert value(samples, "process_resident_memory_bytes") > 0  # the standard process metrics
    assert any(name == "python_info" for name, _ in samples)
    labels = {k for _, label_set in samples for k, _ in label_set}
    assert not labels & {"recipient", "recipient_id", "notification_id", "id"}  # bounded labels only


async def test_an_open_breaker_shows_as_one(short_tmp: Path, suite: SimulatorSuite) -> None:
    config = make_config(short_tmp, **suite.config_sections(), metrics=METRICS,
                         breaker={"threshold": 2, "cooldown": 60.0},
                         retry={"attempts_per_channel": 2, "backoff_initial": 0.01, "backoff_max": 0.02})
    running = await start_daemon(config)
    try:
        ann = await add_ann(running)
        suite.telegram.faults.inject("error", count=2, target=CHAT)
        first = await deliver(running, ann, message="trips the breaker")
        assert log_of(first) == [("telegram", "retry"), ("telegram", "failed"), ("email", "delivered")]
        samples = await scrape(running)
        assert value(samples, "fnotify_breaker_open", channel="telegram") == 1
        assert value(samples, "fnotify_breaker_open", channel="email") == 0
    finally:
        await stop_daemon(running)


async def test_the_queue_depth_is_read_from_the_database_at_most_once_per_ttl(watched: RunningDaemon) -> None:
    metrics = watched.daemon.metrics
    assert metrics is not None
    now = [1000.0]
    metrics.monotonic = lambda: now[0]
    reads = 0
    counts_by_status = watched.daemon.store.counts_by_status

    async def counted() -> dict[str, int]:
        nonlocal reads
        reads += 1
        return await counts_by_status()

    watched.daemon.store.counts_by_status = counted  # type: ignore[method-assign]
    ann = await add_ann(watched)
    await watched.call("pause")
    assert value(await scrape(watched), "fnotify_queue_depth") == 0
    for _ in range(2):
        await watched.call("send", recipient_id=ann, message="held")
    async with httpx.AsyncClient(timeout=10) as client:  # a scrape storm within the TTL
        await asyncio.gather(*(scrape(watched, client) for _ in range(20)))
    assert reads == 1
    now[0] += 1.9
    assert value(await scrape(watched), "fnotify_queue_depth") == 0  # still the cached reading
    now[0] += 0.2
    samples = await scrape(watched)
    assert value(samples, "fnotify_queue_depth") == 2 and value(samples, "fnotify_paused") == 1
    assert reads == 2


async def test_held_notifications_are_a_series_of_their_own_beside_the_queue_depth(watched: RunningDaemon) -> None:
    metrics = watched.daemon.metrics
    assert metrics is not None
    metrics.queue_depth_ttl = 0.0  # every scrape reads the database
    now = datetime.now(UTC)  # a window around the daemon's clock: the recipient is in quiet hours now
    window = f"{now - timedelta(hours=1):%H:%M}-{now + timedelta(hours=2):%H:%M}"
    asleep = await watched.call("recipient.add", name="Bo", email=EMAIL, quiet_hours=window)
    held = [(await watched.call("send", recipient_id=asleep["id"], message=f"night {i}"))["id"] for i in range(2)]
    for nid in held:
        async with asyncio.timeout(10):
            while (await watched.call("show", id=nid))["status"] != "held":
                await asyncio.sleep(0.02)
    await watched.call("pause")  # the next one stays queued
    await watched.call("send", recipient_id=await add_ann(watched), message="queued")
    samples = await scrape(watched)
    assert value(samples, "fnotify_queue_depth") == 1  # queued or sending: what the alert rule watches
    assert value(samples, "fnotify_queue_depth", status="held") == 2  # waiting for the end of quiet hours


async def test_readyz_turns_503_on_pause_and_back_on_resume_on_both_listeners(watched: RunningDaemon) -> None:
    http = watched.daemon.http
    assert http is not None
    urls = [metrics_url(watched), http.url]  # the HTTP API answers the probes without a token

    async def probe(path: str) -> list[tuple[int, Any]]:
        async with httpx.AsyncClient(timeout=10) as client:
            return [((r := await client.get(url + path)).status_code, r.json()) for url in urls]

    assert await probe("/healthz") == [(200, {"alive": True})] * 2
    assert await probe("/readyz") == [(200, {"ready": True})] * 2
    await watched.call("pause")
    paused = {"ready": False, "reason": "delivery is paused (fnotify resume)"}
    assert await probe("/readyz") == [(503, paused)] * 2
    assert await probe("/healthz") == [(200, {"alive": True})] * 2  # alive all the same
    await watched.call("resume")
    assert await probe("/readyz") == [(200, {"ready": True})] * 2
    async with httpx.AsyncClient(timeout=10) as client:  # the API itself still wants its token
        assert (await client.get(f"{http.url}/api/v1/recipients")).status_code == 401


async def test_readyz_is_503_when_the_database_does_not_answer(watched: RunningDaemon) -> None:
    await watched.daemon.store.close()
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{metrics_url(watched)}/readyz")
    assert response.status_code == 503
    assert response.json() == {"ready": False, "reason": "the database does not answer: storage is not open"}


def test_each_daemon_has_its_own_registry(short_tmp: Path) -> None:
    """Several daemons in one process (the tests, a future cluster test) must not clash on names."""
    first = Daemon(make_config(short_tmp / "a", metrics=METRICS))
    second = Daemon(make_config(short_tmp / "b", metrics=METRICS))
    assert first.metrics is not None and second.metrics is not None
    first.metrics.observe("attempt.finished", {"channel": "sms", "outcome": "delivered", "duration_ms": 5.0})
    assert first.metrics.registry.get_sample_value(
        "fnotify_attempts_total", {"channel": "sms", "outcome": "delivered"}) == 1
    assert second.metrics.registry.get_sample_value(
        "fnotify_attempts_total", {"channel": "sms", "outcome": "delivered"}) == 0


async def test_metrics_are_off_by_default(bare_daemon: RunningDaemon) -> None:
    assert bare_daemon.daemon.metrics is None and bare_daemon.daemon.metrics_server is None
