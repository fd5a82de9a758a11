"""The daemon as a real child process, for tests that kill it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from daemon.client import DaemonClient, DaemonUnavailable

REPO = Path(__file__).resolve().parent.parent


def write_config(path: Path, state_dir: Path, sections: dict[str, dict[str, Any]]) -> Path:
    """Write a TOML config: ``sections`` as from SimulatorSuite.config_sections() plus overrides."""
    lines = [f'[daemon]\nstate_dir = "{state_dir}"\nshutdown_grace = 2.0\n']
    for section, values in sections.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, bool):
                rendered = "true" if value else "false"
            elif isinstance(value, int | float):
                rendered = repr(value)
            else:
                rendered = f'"{value}"'
            lines.append(f"{key} = {rendered}")
        lines.append("")
    path.write_text("\n".join(lines))
    return path


class DaemonProcess:
    def __init__(self, config: Path, socket_path: Path, log_path: Path) -> None:
        self.config = config
        self.socket_path = socket_path
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.command = [sys.executable, "-m", "daemon"]
        """What runs the daemon; ``--config FILE run`` follows."""

    async def start(self, env: dict[str, str] | None = None, timeout: float = 60.0) -> None:
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.command, "--config", str(self.config), "run",
                stderr=log, cwd=str(REPO), env={**os.environ, **(env or {})},
            )
        async with asyncio.timeout(timeout):
            while True:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"daemon exited {self.proc.returncode}:\n{self.log_path.read_text()}")
                try:
                    async with DaemonClient(self.socket_path) as client:
                        await client.call("ping")
                        return
                except DaemonUnavailable:
                    await asyncio.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)

    async def terminate(self) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 15)

    async def wait(self) -> int:
        assert self.proc is not None
        return await self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text()
