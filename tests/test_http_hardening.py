"""Hostile HTTP clients against the daemon's listeners (``daemon.http_guard``): half-open floods,
stalled bodies, oversized headers; and the file descriptor budget and log throttling behind them."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from daemon.api.resources import RESERVED_FDS, http_listener_limits
from daemon.client import DaemonClient
from daemon.config import parse_config
from daemon.core.logsafe import LogThrottle
from daemon.runtime.logs import throttle_resource_errors
from daemon.simulators.suite import SimulatorSuite
from tests.conftest import RunningDaemon, make_config, start_daemon, stop_daemon
from tests.daemon_process import REPO

TOKEN = "flood-test-token-00000001"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HALF_A_HEADER = b"GET /api/v1/recipients HTTP/1.1\r\nHost: localhost\r\nUser-Agent: slow"
FD_LIMIT = 160
# runs the daemon with both RLIMIT_NOFILE limits at argv[1], as a small unit's LimitNOFILE= would
LIMITED = """import os, resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
os.execv(sys.executable, [sys.executable, "-m", "daemon", *sys.argv[2:]])
"""
FOREIGN = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES",
           "CREDENTIALS_DIRECTORY", "JOURNAL_STREAM", "FNOTIFY_CONFIG", "FNOTIFY_SOCKET", "FNOTIFY_HTTP_TOKENS")


def write_toml(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


async def closed_by_server(reader: asyncio.StreamReader) -> None:
    """Read until the server closes the connection (EOF or reset)."""
    try:
        while await reader.read(65_536):
            pass
    except ConnectionError:
        pass


async def eventually(check: Any, within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not check():
            await asyncio.sleep(0.01)


# -- the real daemon, flooded ------------------------------------------------------------------------

async def test_a_half_open_flood_starves_neither_the_socket_nor_an_authenticated_request_and_is_closed(
    short_tmp: Path,
) -> None:
    socket_path = short_tmp / "fnotify.sock"
    config = write_toml(short_tmp / "fnotify.toml", {
        "daemon": {"state_dir": str(short_tmp), "socket": str(socket_path), "max_connections": 8,
                   "shutdown_grace": 1.0},
        "http": {"enabled": True, "listen": "127.0.0.1:0", "tokens": [TOKEN], "max_connections": 16,
                 "header_timeout": 1.0},
    })
    log_path = short_tmp / "daemon.log"
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN}
    with log_path.open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", LIMITED, str(FD_LIMIT), "--config", str(config), "run",
            stderr=log, cwd=str(REPO), env=env)
    flood: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        async with asyncio.timeout(15):
            while not (found := re.search(r"HTTP API listening on http://127\.0\.0\.1:(\d+)", log_path.read_text())):
                assert proc.returncode is None, log_path.read_text()
                await asyncio.sleep(0.05)
        port = int(found.group(1))
        lines_before = len(log_path.read_text().splitlines())

        async with asyncio.timeout(15):  # more half-open connections than the daemon has descriptors
            for _ in range(FD_LIMIT + 40):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(HALF_A_HEADER)
                flood.append((reader, writer))

        async with asyncio.timeout(2):
            async with DaemonClient(socket_path, timeout=2) as client:
                assert (await client.call("status"))["version"]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH, timeout=2) as http:
            assert (await http.get("/api/v1/recipients")).status_code == 200

        async with asyncio.timeout(4):  # header_timeout is 1 s: every half-open one is closed
            await asyncio.gather(*(closed_by_server(reader) for reader, _ in flood))
        log_lines = log_path.read_text().splitlines()[lines_before:]
        assert len(log_lines) < 20, "\n".join(log_lines[:50])
        assert any("closed the one idle longest to make room" in line for line in log_lines)
    finally:
        for _, writer in flood:
            writer.close()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)


# -- one listener, in process ------------------------------------------------------------------------

@pytest.fixture
async def guarded(short_tmp: Path) -> AsyncIterator[RunningDaemon]:
    config = make_config(short_tmp, http={"enabled": True, "listen": "127.0.0.1:0", "tokens": [TOKEN],
                                          "max_connections": 2, "header_timeout": 5.0, "body_timeout": 0.5})
    running = await start_daemon(config)
    yield running
    await stop_daemon(running)


async def test_a_stalled_body_is_cut_off_and_at_the_cap_with_all_busy_a_newcomer_is_told_503(
    guarded: RunningDaemon,
) -> None:
    assert guarded.daemon.http is not None
    listener = guarded.daemon.http.listener
    host, port = guarded.daemon.http.address
    stalled = []
    for _ in range(2):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"POST /api/v1/recipients HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " + TOKEN.encode()
                     + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\": ")
        stalled.append((reader, writer))
    await eventually(lambda: listener.open_connections == 2 and listener.idle_connections == 0)

    reader, writer = await asyncio.open_connection(host, port)
    reply = await asyncio.wait_for(reader.read(), 2)
    writer.close()
    assert reply.startswith(b"HTTP/1.1 503 ") and b"too many connections" in reply

    async with asyncio.timeout(2):  # body_timeout is 0.5 s
        await asyncio.gather(*(closed_by_server(r) for r, _ in stalled))
    for _, w in stalled:
        w.close()
    async with httpx.AsyncClient(base_url=guarded.daemon.http.url, headers=AUTH, timeout=2) as http:
        assert (await http.post("/api/v1/recipients", json={"name": "Ann"})).status_code == 201
    assert await guarded.call("recipient.list") == [await guarded.call("recipient.show", id=1)]  # no half Ann


async def test_an_oversized_header_is_one_warning_line_and_repeats_are_counted(
    guarded: RunningDaemon, caplog: pytest.LogCaptureFixture
) -> None:
    assert guarded.daemon.http is not None
    with caplog.at_level(logging.INFO):
        async with httpx.AsyncClient(base_url=guarded.daemon.http.url, headers=AUTH, timeout=2) as http:
            for _ in range(3):
                response = await http.get("/api/v1/recipients", headers={"X-Padding": "a" * 10_000})
                assert response.status_code == 400
            assert (await http.get("/api/v1/recipients")).status_code == 200
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    refused = [r.getMessage() for r in caplog.records if "malformed or oversized" in r.getMessage()]
    assert len(refused) == 1 and "\n" not in refused[0] and "from 127.0.0.1" in refused[0]


async def test_the_telegram_webhook_listener_is_guarded_too(short_tmp: Path, suite: SimulatorSuite) -> None:
    sections = suite.config_sections()
    sections["telegram"].update(mode="webhook", webhook_url="https://bot.example.test/tg/hook",
                                webhook_listen="127.0.0.1:0", webhook_secret="s3cret-webhook-token-0123456789")
    running = await start_daemon(make_config(short_tmp, **sections,
                                             http={"max_connections": 2, "header_timeout": 0.5}))
    try:
        bot = await asyncio.wait_for(running.daemon.wait_bot(), 10)
        assert bot is not None and bot.webhook_address is not None
        host, port = bot.webhook_address
        first = await asyncio.open_connection(host, port)
        first[1].write(b"POST /tg/hook HTTP/1.1\r\nHost: x\r\n")
        others = [await asyncio.open_connection(host, port) for _ in range(2)]
        async with asyncio.timeout(1):  # the third made room by closing the one idle longest
            await closed_by_server(first[0])
        async with asyncio.timeout(2):  # and the header timeout closes the others
            await asyncio.gather(*(closed_by_server(r) for r, _ in others))
        for _, writer in [first, *others]:
            writer.close()
    finally:
        await stop_daemon(running)


# -- the pieces ---------------------------------------------------------------------------------------

def test_http_connections_are_capped_below_the_file_descriptor_limit(
    short_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = parse_config({"daemon": {"state_dir": str(short_tmp), "max_connections": 100},
                           "http": {"enabled": True, "tokens": [TOKEN], "max_connections": 5000}})
    with caplog.at_level(logging.WARNING):
        limits = http_listener_limits(config, fd_limit=1024)
    assert limits.max_connections == 1024 - 100 - RESERVED_FDS
    assert "[http] max_connections = 5000 is more than this process can hold" in caplog.text
    assert http_listener_limits(config, fd_limit=65_536).max_connections == 5000
    # the metrics endpoint is a listener of the same kind: the budget is shared among all three
    every = parse_config({"daemon": {"state_dir": str(short_tmp), "max_connections": 100},
                          "http": {"enabled": True, "tokens": [TOKEN], "max_connections": 5000},
                          "metrics": {"enabled": True},
                          "telegram": {"enabled": True, "token": "123456:" + "A" * 35, "mode": "webhook",
                                       "webhook_url": "https://bot.example.test/hook",
                                       "webhook_secret": "s3cret-webhook-token-0123456789"}})
    assert http_listener_limits(every, fd_limit=1024).max_connections == (1024 - 100 - RESERVED_FDS) // 3


async def test_accept_errors_for_want_of_descriptors_are_logged_once_then_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    throttle = LogThrottle(logging.getLogger("asyncio"), interval=60, clock=lambda: now[0])
    throttle_resource_errors(loop, throttle)
    try:
        with caplog.at_level(logging.INFO, logger="asyncio"):
            for _ in range(1000):  # what Python 3.11 does within a second once accept() gets EMFILE
                loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                             "exception": OSError(errno.EMFILE, "Too many open files")})
            assert len(caplog.records) == 1 and caplog.records[0].exc_info is None
            assert "socket.accept() out of system resource: Too many open files" in caplog.records[0].getMessage()
            now[0] = 61.0
            throttle.flush()
    finally:
        loop.set_exception_handler(previous)
    assert [r.getMessage() for r in caplog.records][1] == (
        "socket.accept() out of system resource: Too many open files: 999 more in the last 61 s")
