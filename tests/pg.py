"""A real, throwaway PostgreSQL for the tests (never a mock).

``postgres_server`` (session scope) starts a cluster of its own: ``initdb`` into a temporary directory,
``pg_ctl start`` on a free loopback port with its Unix socket in that directory, password (SCRAM)
authentication over TCP; stopped and deleted at the end. PostgreSQL refuses to run as root, so when
the tests run as root (CI does) the server runs as the ``postgres`` user. With ``FNOTIFY_TEST_PG_URL``
set (an admin URL on a server you run, with CREATEDB), that server is used instead.

``pg_database`` gives each test a fresh database on it. Without the server binaries the tests that need
them are skipped, saying why, unless ``FNOTIFY_REQUIRE_POSTGRES=1`` (CI sets it): then they fail.
"""

from __future__ import annotations

import glob
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

ENV_URL = "FNOTIFY_TEST_PG_URL"
ENV_REQUIRE = "FNOTIFY_REQUIRE_POSTGRES"
RUN_AS = "postgres"  # the Debian packages' server account


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: ``pg_config --bindir``, then Debian's
    /usr/lib/postgresql/<version>/bin (newest first), then $PATH."""
    candidates: list[Path] = []
    try:
        found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10)
        if found.returncode == 0 and found.stdout.strip():
            candidates.append(Path(found.stdout.strip()))
    except (OSError, subprocess.SubprocessError):
        pass

    def version(path: str) -> int:
        match = re.search(r"/postgresql/(\d+)/", path)
        return int(match.group(1)) if match else 0

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)]
    if on_path := shutil.which("initdb"):
        candidates.append(Path(on_path).parent)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThrowawayCluster:
    """``initdb`` + ``pg_ctl start`` in a temporary directory; ``stop()`` removes every trace."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="fnpg-", dir="/tmp"))
        self.data = self.root / "data"
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self._as_root = os.geteuid() == 0

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_root:
            command = ["runuser", "-u", RUN_AS, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:1])} failed ({result.returncode}): {result.stderr}\n{tail}")

    def start(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._as_root:
            shutil.chown(self.root, RUN_AS)
            shutil.chown(pwfile, RUN_AS)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", f"--pwfile={pwfile}", "--auth-local=trust",
                  "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")
        # fsync off: a test cluster's data is worth nothing after the run, and the tests stay fast
        options = (f"-k {self.root} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off"
                   " -c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60",
                  "-o", options, "start")

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _unavailable(reason: str) -> None:
    if os.environ.get(ENV_REQUIRE) == "1":
        pytest.fail(f"{reason}, and {ENV_REQUIRE}=1 says PostgreSQL tests must run")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The admin URL of a running PostgreSQL: a throwaway cluster, or ``$FNOTIFY_TEST_PG_URL``."""
    if url := os.environ.get(ENV_URL):
        yield url
        return
    bindir = find_bindir()
    if bindir is None:
        _unavailable("PostgreSQL server binaries (initdb, pg_ctl) not found: `apt-get install postgresql`,"
                     f" or set {ENV_URL} to an admin URL of a server to use")
    assert bindir is not None
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        _unavailable("running as root, and no runuser to start PostgreSQL as the postgres user")
    cluster = ThrowawayCluster(bindir)
    try:
        cluster.start()
        yield cluster.admin_url
    finally:
        cluster.stop()


def with_database(admin_url: str, name: str) -> str:
    """``admin_url`` pointing at database ``name`` instead."""
    return admin_url.rsplit("/", 1)[0].split("?")[0] + f"/{name}"


async def create_database(admin_url: str) -> str:
    name = f"fnotify_test_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_url, name)


async def drop_database(admin_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def pg_database(postgres_server: str) -> AsyncIterator[str]:
    """The URL of a new, empty database, dropped after the test."""
    url = await create_database(postgres_server)
    yield url
    await drop_database(postgres_server, url)
