"""Shared fixtures: a short temporary directory (Unix socket paths are limited to 108 bytes),
config builders, and an in-process daemon on a real Unix socket."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon.client import DaemonClient
from daemon.config import Config, parse_config
from daemon.core.models import FINAL_STATUSES
from daemon.runtime.app import Daemon
from daemon.simulators.suite import SimulatorSuite
from tests.pg import pg_database, postgres_server  # noqa: F401  (fixtures: a real PostgreSQL)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="fn-", dir="/tmp"))
    yield path
    if not os.environ.get("FNOTIFY_KEEP_TMP"):
        shutil.rmtree(path, ignore_errors=True)


def make_config(state_dir: Path, **sections: dict[str, Any]) -> Config:
    """A config with fast retries on ``state_dir``; ``sections`` override per section."""
    raw: dict[str, Any] = {
        "daemon": {"state_dir": str(state_dir), "shutdown_grace": 2.0},
        "retry": {"attempts_per_channel": 3, "backoff_initial": 0.05, "backoff_max": 0.2},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return parse_config(raw)


class FakeClock:
    """Wall time and monotonic seconds that move only when a test advances them: pass ``now`` as a
    ``clock`` and ``monotonic`` as a ``monotonic`` (Daemon, Engine) instead of sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        self.wall = start or datetime.now(UTC)
        self.seconds = 1000.0

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.seconds

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.seconds += seconds


class RunningDaemon:
    def __init__(self, daemon: Daemon, client: DaemonClient) -> None:
        self.daemon = daemon
        self.client = client

    @property
    def config(self) -> Config:
        return self.daemon.config

    async def call(self, op: str, **params: Any) -> Any:
        return await self.client.call(op, **params)

    async def wait_final(self, notification_id: int, timeout: float = 10.0) -> dict[str, Any]:
        """Poll (tests only) until the notification is final; fails the test on timeout."""
        async with asyncio.timeout(timeout):
            while True:
                n: dict[str, Any] = await self.call("show", id=notification_id)
                if n["status"] in FINAL_STATUSES:
                    return n
                await asyncio.sleep(0.02)


async def start_daemon(config: Config, **options: Any) -> RunningDaemon:
    """The daemon in this process; ``options`` go to ``Daemon`` (e.g. a fake ``clock`` and ``monotonic``)."""
    daemon = Daemon(config, **options)
    await daemon.start()
    client = await DaemonClient(config.daemon.socket_path).connect()
    return RunningDaemon(daemon, client)


async def stop_daemon(running: RunningDaemon) -> None:
    await running.client.close()
    await running.daemon.stop()


@pytest.fixture
async def suite() -> AsyncIterator[SimulatorSuite]:
    async with SimulatorSuite() as sims:
        yield sims


@pytest.fixture
async def daemon(short_tmp: Path, suite: SimulatorSuite) -> AsyncIterator[RunningDaemon]:
    """A daemon with every channel pointed at the loopback simulators of ``suite``."""
    running = await start_daemon(make_config(short_tmp, **suite.config_sections()))
    yield running
    await stop_daemon(running)


@pytest.fixture
async def bare_daemon(short_tmp: Path) -> AsyncIterator[RunningDaemon]:
    """A daemon with every channel disabled: for API, validation and skip-rule tests."""
    running = await start_daemon(make_config(short_tmp))
    yield running
    await stop_daemon(running)
