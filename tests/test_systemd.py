"""systemd integration, tested on real processes and real sockets: the notify protocol (READY=1,
STATUS=, WATCHDOG=1, RELOADING=1, STOPPING=1), socket activation through LISTEN_FDS, SIGHUP reloads,
SIGTERM in the middle of a burst, credentials from $CREDENTIALS_DIRECTORY and ``fnotify check``."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import sqlite3
import statistics
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.api.resources import RESERVED_FDS
from daemon.cli.doctor import FAILED, run_checks
from daemon.client import ClientError, DaemonClient
from daemon.config import DaemonConfig, HttpConfig, load_config
from daemon.runtime.reload import plan_reload
from daemon.runtime.systemd import Notifier, listen_fds, notify_address, watchdog_interval
from daemon.simulators.sms import SmsSimulator
from tests.conftest import make_config

REPO = Path(__file__).resolve().parent.parent
# our own environment must not leak into the daemons under test (CI may itself run under systemd)
FOREIGN = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES",
           "CREDENTIALS_DIRECTORY", "FNOTIFY_TELEGRAM_TOKEN", "FNOTIFY_EMAIL_PASSWORD",
           "FNOTIFY_SMS_AUTH_TOKEN", "JOURNAL_STREAM", "FNOTIFY_CONFIG", "FNOTIFY_SOCKET")
# socket activation: put the passed socket on fd 3, name this pid in LISTEN_PID, exec the daemon (same pid)
ACTIVATE = """import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1", LISTEN_FDNAMES="fnotify")
os.execv(sys.executable, [sys.executable, "-m", "daemon", *sys.argv[2:]])
"""
SENDER, PHONE = "+15005550006", "+14155550100"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN}
    return {**env, **extra}


def write_toml(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            rendered = ("true" if value else "false") if isinstance(value, bool) else json.dumps(value)
            lines.append(f"{key} = {rendered}")
    path.write_text("\n".join(lines) + "\n")
    return path


def base_sections(tmp: Path, **overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    sections: dict[str, dict[str, Any]] = {
        "daemon": {"state_dir": str(tmp), "socket": str(tmp / "fnotify.sock"), "shutdown_grace": 1.0},
        "retry": {"attempts_per_channel": 3, "backoff_initial": 0.05, "backoff_max": 0.2},
    }
    for name, values in overrides.items():
        sections.setdefault(name, {}).update(values)
    return sections


def sms_sections(sim: SmsSimulator) -> dict[str, dict[str, Any]]:
    assert sim.base_url is not None
    return {
        "sms": {"enabled": True, "provider": "twilio", "base_url": sim.base_url,
                "account_sid": sim.account_sid, "auth_token": sim.auth_token, "sender": SENDER,
                "recipient_limits": []},  # bursts to one phone here test shutdown, not the SMS caps
        "chain": {"default": "sms"},
    }


class Proc:
    """``python -m daemon --config X run`` (or another command) as a child process, stderr to a file."""

    def __init__(self, tmp: Path, config: Path) -> None:
        self.config = config
        self.log_path = tmp / "daemon.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def spawn(self, *, env: dict[str, str] | None = None, activate_fd: int | None = None) -> Proc:
        args = ["--config", str(self.config), "run"]
        argv = [sys.executable, "-c", ACTIVATE, str(activate_fd), *args] if activate_fd is not None \
            else [sys.executable, "-m", "daemon", *args]
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *argv, stderr=log, cwd=str(REPO), env=env or clean_env(),
                pass_fds=(activate_fd,) if activate_fd is not None else (),
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, within: float = 8.0) -> int:
        assert self.proc is not None
        async with asyncio.timeout(within):
            return await self.proc.wait()

    async def stop(self) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await self.wait()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    async def wait_for_log(self, text: str, within: float = 5.0) -> None:
        async with asyncio.timeout(within):
            while text not in self.log():
                assert self.proc is not None and self.proc.returncode is None, self.log()
                await asyncio.sleep(0.02)


async def serving(path: Path, proc: Proc, within: float = 8.0) -> None:
    """Wait until the daemon answers on ``path`` (for tests that do not listen to NOTIFY_SOCKET)."""
    async with asyncio.timeout(within):
        while True:
            assert proc.proc is not None and proc.proc.returncode is None, proc.log()
            try:
                async with DaemonClient(path, timeout=2) as client:
                    await client.call("ping")
                    return
            except ClientError:
                await asyncio.sleep(0.05)


async def eventually(read: Callable[[], Awaitable[Any]], done: Callable[[Any], bool],
                     within: float = 5.0) -> Any:
    """Re-read until ``done(value)``; fails the test after ``within`` seconds."""
    async with asyncio.timeout(within):
        while True:
            if done(value := await read()):
                return value
            await asyncio.sleep(0.05)


@pytest.fixture
async def running() -> AsyncIterator[list[Proc]]:
    """Processes a test started; any still running at the end are killed."""
    procs: list[Proc] = []
    yield procs
    for p in procs:
        if p.proc is not None and p.proc.returncode is None:
            p.proc.kill()
            await p.proc.wait()


class NotifyListener:
    """The service manager's end of $NOTIFY_SOCKET: a datagram socket the test owns."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.setblocking(False)
        self.received: list[tuple[float, str]] = []

    async def next(self, within: float = 8.0) -> str:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(within):
            data = await loop.sock_recv(self.sock, 4096)
        message = data.decode()
        self.received.append((loop.time(), message))
        return message

    async def until(self, predicate: Callable[[str], bool], within: float = 8.0) -> str:
        async with asyncio.timeout(within):
            while not predicate(message := await self.next()):
                pass
        return message

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener(short_tmp: Path) -> Iterator[NotifyListener]:
    notify = NotifyListener(str(short_tmp / "notify.sock"))
    yield notify
    notify.close()


def lines(message: str) -> set[str]:
    return set(message.split("\n"))


# -- the protocol, in-process --------------------------------------------------------------------

def test_notify_socket_with_at_sign_means_the_abstract_namespace() -> None:
    assert notify_address("@fnotify/notify") == "\0fnotify/notify"
    assert notify_address("/run/systemd/notify") == "/run/systemd/notify"
    assert notify_address("vsock:2:1234") is None
    assert notify_address(None) is None


async def test_notifier_reaches_an_abstract_namespace_socket() -> None:
    name = f"fnotify-test-{uuid.uuid4().hex}"
    listener = NotifyListener("\0" + name)
    try:
        notifier = Notifier.from_environment({"NOTIFY_SOCKET": "@" + name})
        assert notifier.ready("queue depth 0")
        assert await listener.next(2) == "READY=1\nSTATUS=queue depth 0"
        notifier.close()
    finally:
        listener.close()


def test_watchdog_pings_at_half_the_interval_and_only_for_the_named_pid() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}, pid=42) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "42"}, pid=42) == 0.1
    assert watchdog_interval({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "43"}, pid=42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}, pid=42) is None
    assert watchdog_interval({}, pid=42) is None


def test_listen_fds_for_another_pid_are_ignored_and_the_variables_removed() -> None:
    env = {"LISTEN_PID": "1", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "x", "PATH": "/bin"}
    assert listen_fds(env, pid=2) == []
    assert env == {"PATH": "/bin"}


async def test_status_repeats_until_stopping_and_a_failing_query_is_skipped(listener: NotifyListener) -> None:
    calls = 0

    async def status() -> str:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("database busy")
        return f"depth {calls}"

    notifier = Notifier(notify_address(listener.sock.getsockname()), status_interval=0.05)
    task = asyncio.create_task(notifier.supervise(status))
    try:
        assert await listener.next(2) == "READY=1\nSTATUS=depth 1"
        assert await listener.next(2) == "STATUS=depth 3"  # the failed query sent nothing
        notifier.stopping()
        assert "STOPPING=1" in lines(await listener.next(2))
        with pytest.raises(TimeoutError):  # no STATUS= once stopping
            await listener.next(0.3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# -- Type=notify, on a real daemon process ---------------------------------------------------------

async def test_ready_comes_once_the_socket_accepts_then_watchdog_pings_and_stopping_on_sigterm(
    short_tmp: Path, listener: NotifyListener, running: list[Proc]
) -> None:
    config = write_toml(short_tmp / "fnotify.toml", base_sections(short_tmp))
    env = clean_env(NOTIFY_SOCKET=str(short_tmp / "notify.sock"), WATCHDOG_USEC="200000")
    proc = await Proc(short_tmp, config).spawn(env=env)
    running.append(proc)

    ready = await listener.next()
    assert ready.startswith("READY=1\n")
    assert "STATUS=queue depth 0 (0 queued, 0 sending), 0 attempts in flight" in lines(ready)
    # the very first connection after READY=1 is served: no retry loop needed
    async with DaemonClient(short_tmp / "fnotify.sock", timeout=2) as client:
        assert await client.call("ping") == "pong"

    pings: list[float] = []
    while len(pings) < 8:
        if await listener.next(1) == "WATCHDOG=1":
            pings.append(listener.received[-1][0])
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    # every 0.1 s (WATCHDOG_USEC / 2): the median shows the interval, robust to one stall on a busy CI host
    assert 0.07 < statistics.median(gaps) < 0.15, gaps

    proc.signal(signal.SIGTERM)
    stopping = await listener.until(lambda m: "STOPPING=1" in lines(m))
    assert "STATUS=stopping: finishing attempts in flight" in lines(stopping)
    assert await proc.wait() == 0
    assert "READY=1" not in {m for _, m in listener.received[1:]}


async def test_no_watchdog_pings_when_watchdog_pid_names_another_process(
    short_tmp: Path, listener: NotifyListener, running: list[Proc]
) -> None:
    config = write_toml(short_tmp / "fnotify.toml", base_sections(short_tmp))
    env = clean_env(NOTIFY_SOCKET=str(short_tmp / "notify.sock"), WATCHDOG_USEC="100000", WATCHDOG_PID="1")
    proc = await Proc(short_tmp, config).spawn(env=env)
    running.append(proc)
    assert (await listener.next()).startswith("READY=1")
    with pytest.raises(TimeoutError):
        await listener.until(lambda m: m == "WATCHDOG=1", within=0.5)
    assert await proc.stop() == 0


# -- socket activation -----------------------------------------------------------------------------

async def _activated(short_tmp: Path, running: list[Proc]) -> tuple[Proc, Path]:
    activated = short_tmp / "activated.sock"
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(str(activated))
    listening.listen(16)
    # as under systemd, the config names the same path as ListenStream=: the daemon must not bind it again
    sections = base_sections(short_tmp, daemon={"socket": str(activated)})
    config = write_toml(short_tmp / "fnotify.toml", sections)
    try:
        proc = await Proc(short_tmp, config).spawn(activate_fd=listening.fileno())
    finally:
        listening.close()  # the daemon holds its own copy now, as with systemd
    running.append(proc)
    await serving(activated, proc)
    return proc, activated


async def test_the_daemon_serves_on_the_socket_passed_through_listen_fds(
    short_tmp: Path, running: list[Proc]
) -> None:
    proc, activated = await _activated(short_tmp, running)
    async with DaemonClient(activated, timeout=2) as client:
        recipient = await client.call("recipient.add", name="ops")
        assert (await client.call("recipient.list"))[0]["id"] == recipient["id"]
    assert f"socket activation: serving on {activated} (fd 3 from systemd)" in proc.log()
    assert await proc.stop() == 0


async def test_an_activated_socket_file_outlives_the_daemon(short_tmp: Path, running: list[Proc]) -> None:
    proc, activated = await _activated(short_tmp, running)
    assert await proc.stop() == 0
    assert activated.exists()


# -- SIGHUP ------------------------------------------------------------------------------------------

def test_a_reload_plan_applies_retry_live_and_keeps_the_socket_until_a_restart(short_tmp: Path) -> None:
    old = make_config(short_tmp)
    new = make_config(short_tmp, daemon={"socket": str(short_tmp / "other.sock"), "log_level": "debug"},
                      retry={"attempts_per_channel": 7})
    plan = plan_reload(old, new)
    assert plan.needs_restart == ("[daemon] socket",)
    assert set(plan.changed) == {"[daemon] log_level", "[retry] attempts_per_channel"}
    assert plan.config.daemon.socket_path == old.daemon.socket_path
    assert plan.config.retry.attempts_per_channel == 7
    assert not plan.channels_changed


async def test_sighup_changes_the_retry_policy_names_restart_keys_and_survives_a_bad_file(
    short_tmp: Path, listener: NotifyListener, running: list[Proc]
) -> None:
    path = short_tmp / "fnotify.toml"
    write_toml(path, base_sections(short_tmp))
    proc = await Proc(short_tmp, path).spawn(env=clean_env(NOTIFY_SOCKET=str(short_tmp / "notify.sock")))
    running.append(proc)
    assert (await listener.next()).startswith("READY=1")
    sock = short_tmp / "fnotify.sock"
    async with DaemonClient(sock, timeout=2) as client:
        assert (await client.call("status"))["retry"]["attempts_per_channel"] == 3

        retry = {"attempts_per_channel": 7, "backoff_initial": 1.5, "backoff_max": 30.0}
        moved = {"socket": str(short_tmp / "moved.sock")}
        write_toml(path, base_sections(short_tmp, retry=retry, daemon=moved))
        proc.signal(signal.SIGHUP)
        assert (await listener.next()).startswith("RELOADING=1\nMONOTONIC_USEC=")
        assert await listener.until(lambda m: m.startswith("READY=1")) == "READY=1"
        retry = (await client.call("status"))["retry"]
        assert (retry["attempts_per_channel"], retry["backoff_initial"]) == (7, 1.5)
        assert "reload: [daemon] socket changed, needs a restart: keeping the running value" in proc.log()
        assert "[retry] attempts_per_channel, [retry] backoff_initial, [retry] backoff_max" in proc.log()

        path.write_text("[retry\nattempts_per_channel = 1\n")
        proc.signal(signal.SIGHUP)
        await proc.wait_for_log("reload failed, still running on the previous configuration")
        assert (await client.call("status"))["retry"]["attempts_per_channel"] == 7
    async with DaemonClient(sock, timeout=2) as client:  # still on the socket it started with
        assert await client.call("ping") == "pong"
    assert not (short_tmp / "moved.sock").exists()
    assert await proc.stop() == 0


async def test_sighup_rebuilds_a_channel_without_breaking_the_attempt_in_flight(
    short_tmp: Path, running: list[Proc]
) -> None:
    sim = SmsSimulator(account_sid="ACreload", auth_token="reload-token")
    await sim.start()
    try:
        sim.faults.inject("latency", count=1, delay=1.0)
        path = write_toml(short_tmp / "fnotify.toml", base_sections(short_tmp, **sms_sections(sim)))
        proc = await Proc(short_tmp, path).spawn()
        running.append(proc)
        await serving(short_tmp / "fnotify.sock", proc)
        async with DaemonClient(short_tmp / "fnotify.sock", timeout=5) as client:
            recipient = await client.call("recipient.add", name="ops", phone=PHONE)
            sent = await client.call("send", recipient_id=recipient["id"], message="disk full")
            await eventually(lambda: client.call("show", id=sent["id"]), lambda n: bool(n["attempts"]))

            sections = base_sections(short_tmp, **sms_sections(sim))
            sections["sms"]["timeout"] = 20.0
            write_toml(path, sections)
            proc.signal(signal.SIGHUP)
            await proc.wait_for_log("channels rebuilt; enabled: sms")
            shown = await eventually(lambda: client.call("show", id=sent["id"]),
                                     lambda n: n["status"] == "delivered")
        # one attempt: the old adapter was not closed under it (that would be a retry, then delivered)
        assert [a["outcome"] for a in shown["attempts"]] == ["delivered"]
        assert "reloaded" in proc.log() and "[sms] timeout" in proc.log()
        assert await proc.stop() == 0
    finally:
        await sim.stop()


# -- SIGTERM in the middle of a burst ------------------------------------------------------------------

BURST = 200


async def test_sigterm_mid_burst_loses_nothing(short_tmp: Path, running: list[Proc]) -> None:
    sim = SmsSimulator(account_sid="ACburst", auth_token="burst-token")
    await sim.start()
    try:
        sim.faults.inject("latency", delay=0.4)  # attempts are in flight when SIGTERM lands
        sections = base_sections(short_tmp, **sms_sections(sim))
        sections["daemon"]["shutdown_grace"] = 0.3
        path = write_toml(short_tmp / "fnotify.toml", sections)
        sock = short_tmp / "fnotify.sock"
        proc = await Proc(short_tmp, path).spawn()
        running.append(proc)
        await serving(sock, proc)

        acknowledged: set[int] = set()
        async with DaemonClient(sock, timeout=5) as client:
            recipient_id = (await client.call("recipient.add", name="ops", phone=PHONE))["id"]
            for i in range(BURST):
                if i == BURST // 2:
                    proc.signal(signal.SIGTERM)
                try:
                    await client.call("send", recipient_id=recipient_id, message=f"burst {i}",
                                      idempotency_key=f"burst-{i}")
                except ClientError:
                    break  # the daemon stopped taking work: the client will send the rest again
                acknowledged.add(i)
        assert await proc.wait() == 0
        assert len(acknowledged) >= BURST // 2
        with sqlite3.connect(short_tmp / "fnotify.db") as db:
            stored = {r[0] for r in db.execute("SELECT text FROM notifications")}
            query = "SELECT count(*) FROM attempts WHERE outcome = 'interrupted'"
            interrupted = db.execute(query).fetchone()[0]
        assert {f"burst {i}" for i in acknowledged} <= stored, "an acknowledged send was lost"
        assert interrupted > 0, "SIGTERM should have cut some attempts short"

        sim.faults.clear()
        proc = await Proc(short_tmp, path).spawn()
        running.append(proc)
        await serving(sock, proc)
        async with DaemonClient(sock, timeout=5) as client:
            for i in range(BURST):  # resend everything with the same keys: nothing doubles
                await client.call("send", recipient_id=recipient_id, message=f"burst {i}",
                                  idempotency_key=f"burst-{i}")
            await eventually(lambda: client.call("list", limit=1000),
                             lambda ns: len(ns) == BURST and all(n["status"] == "delivered" for n in ns), 8)
        assert await proc.stop() == 0
        texts = Counter(m.body for m in sim.messages)
        assert set(texts) == {f"burst {i}" for i in range(BURST)}
        assert sum(texts.values()) - BURST <= interrupted  # only attempts cut short may repeat
    finally:
        await sim.stop()


# -- credentials and `fnotify check` ------------------------------------------------------------------

def test_secrets_come_from_the_credentials_directory_and_an_empty_one_is_ignored(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = short_tmp / "credentials"
    creds.mkdir()
    (creds / "telegram_token").write_text("123456:FROM-CREDENTIALS-abcdefghijklmnop\n")
    (creds / "sms_auth_token").write_text("\n")  # the unit's SetCredential= fallback when no file exists
    sections = base_sections(short_tmp, sms={"auth_token": "from-the-file"})
    path = write_toml(short_tmp / "fnotify.toml", sections)
    for name in FOREIGN:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    config = load_config(path)
    assert config.telegram.token is not None
    assert config.telegram.token.get_secret_value() == "123456:FROM-CREDENTIALS-abcdefghijklmnop"
    assert config.sms.auth_token is not None and config.sms.auth_token.get_secret_value() == "from-the-file"


async def run_cli(config: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon", "--config", str(config), *args, cwd=str(REPO), env=env or clean_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 8)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_check_reaches_sms_with_the_token_from_the_credentials_directory(short_tmp: Path) -> None:
    sim = SmsSimulator(account_sid="ACcheck", auth_token="token-from-credentials")
    await sim.start()
    try:
        sections = base_sections(short_tmp, **sms_sections(sim))
        del sections["sms"]["auth_token"]  # only in the credentials
        path = write_toml(short_tmp / "fnotify.toml", sections)
        creds = short_tmp / "credentials"
        creds.mkdir()
        (creds / "sms_auth_token").write_text("token-from-credentials\n")
        env = clean_env(CREDENTIALS_DIRECTORY=str(creds))

        status, out, _ = await run_cli(path, "check", env=env)
        assert status == 0, out
        rows = {line.split()[0]: line.split(None, 2)[1:] for line in out.splitlines()[1:]}
        assert rows["sms"][0] == "OK" and "ACcheck" in rows["sms"][1]
        assert rows["credentials"] == ["OK", f"{creds}: sms_auth_token"]
        assert rows["telegram"][0] == "off" and rows["email"][0] == "off"

        (creds / "sms_auth_token").write_text("a-wrong-token\n")
        status, out, _ = await run_cli(path, "doctor", "--json", env=env)
        assert status == 1
        sms = next(r for r in json.loads(out) if r["name"] == "sms")
        assert sms["status"] == "FAILED" and "rejected" in sms["detail"]
        assert "a-wrong-token" not in out

        status, _, err = await run_cli(path, "check")  # no credentials: the config itself is invalid
        assert status == 2
        assert "auth_token" in err
    finally:
        await sim.stop()


async def test_check_fails_when_no_channel_is_enabled(short_tmp: Path) -> None:
    rows = await run_checks(make_config(short_tmp))
    assert [r.name for r in rows if r.status == FAILED] == ["channels"]


# -- the shipped unit --------------------------------------------------------------------------------

def unit_settings(path: Path) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit file (comments and section headers skipped), every value per key."""
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_the_unit_holds_enough_descriptors_and_gives_backups_a_writable_place() -> None:
    unit = unit_settings(REPO / "systemd" / "failover-notify.service")
    # the daemon cannot raise its own limit under SystemCallFilter=~@resources: the unit must, with room
    # for the socket's and the three HTTP listeners' (API, webhook, metrics) default connection caps
    assert "~@privileged @resources" in unit["SystemCallFilter"]
    needed = DaemonConfig().max_connections + 3 * HttpConfig().max_connections + RESERVED_FDS
    assert int(unit["LimitNOFILE"][-1]) >= needed
    # ProtectSystem=strict: the state directory is writable, so backups get a folder there
    assert unit["ProtectSystem"] == ["strict"] and unit["PrivateTmp"] == ["yes"]
    assert "failover-notify/backups" in " ".join(unit["StateDirectory"]).split()
