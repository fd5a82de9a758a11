"""Processes the benchmark drives: the simulators and the daemon, each in its own process so the
client, the providers and the daemon do not share one event loop."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import httpx

from daemon.client import DaemonClient, DaemonUnavailable

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Simulators:
    def __init__(self) -> None:
        self.ports = {name: free_port() for name in ("telegram", "smtp", "sms", "control")}
        self.proc: asyncio.subprocess.Process | None = None
        self.control = f"http://127.0.0.1:{self.ports['control']}"

    async def start(self) -> str:
        args = [f"--{name}-port={port}" for name, port in self.ports.items()]
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "daemon.simulators", *args, stdout=asyncio.subprocess.PIPE, cwd=REPO)
        assert self.proc.stdout is not None
        lines = []
        while True:
            line = (await asyncio.wait_for(self.proc.stdout.readline(), 20)).decode()
            if not line:
                raise RuntimeError("simulators exited at start")
            if line.startswith("# simulators"):
                continue
            lines.append(line)
            if line.startswith("sender") and "+1" in line:  # the last line of the [sms] section
                return "".join(lines)

    async def fault(self, sim: str, rule: dict[str, object] | None) -> None:
        async with httpx.AsyncClient() as http:
            if rule is None:
                (await http.delete(f"{self.control}/{sim}/faults")).raise_for_status()
            else:
                (await http.post(f"{self.control}/{sim}/faults", json=rule)).raise_for_status()

    async def stop(self) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            await self.proc.wait()


class DaemonProc:
    def __init__(self, state: Path, channels_toml: str, extra: str = "") -> None:
        self.state = state
        state.mkdir(parents=True, exist_ok=True)
        self.config = state / "fnotify.toml"
        self.socket = state / "fnotify.sock"
        # Telegram's real limits (30/s, 1/s per chat) are what the daemon paces to by default; the
        # benchmark measures the daemon, so both its pacing and the simulator's limits are raised
        channels_toml = channels_toml.replace(
            "[telegram]\n", "[telegram]\nrate_global = 10000.0\nrate_per_chat = 1000.0\n", 1)
        self.config.write_text(
            f'[daemon]\nstate_dir = "{state}"\nlog_level = "WARNING"\n{extra}\n'
            "[retry]\nattempts_per_channel = 3\nbackoff_initial = 0.2\nbackoff_max = 1.0\n\n" + channels_toml)
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, op: str = "ping") -> float:
        """Start and return seconds until the socket answers ``op`` (READY: pending work re-armed
        first), measured from just before the process is spawned."""
        began = time.perf_counter()
        log = (self.state / "daemon.log").open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "daemon", "--config", str(self.config), "run", stderr=log, cwd=REPO)
        log.close()
        while True:
            if self.proc.returncode is not None:
                raise RuntimeError((self.state / "daemon.log").read_text())
            try:
                async with DaemonClient(self.socket) as client:
                    await client.call(op)
                return time.perf_counter() - began
            except DaemonUnavailable:
                await asyncio.sleep(0.005)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_mb(self) -> tuple[float, float]:
        """Current and peak resident memory, MB."""
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{self.pid}/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

    def cpu_seconds(self) -> float:
        parts = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.proc.wait(), 30)
