"""Binding checks for the simulators: loopback hosts only, and proof that a server is up.

Every simulator uses ``is_loopback``; the SMTP simulator proves itself by reading the greeting instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress

from aiohttp import web

READY_TIMEOUT = 5.0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def prove_listening(host: str, port: int, server: str) -> None:
    """Connect to our own socket before saying "started" (as aiosmtpd's controller does); ``server``
    names the simulator in the error."""
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as exc:
        raise RuntimeError(
            f"{server} did not accept a connection on {host}:{port} within {READY_TIMEOUT}s: "
            f"{exc}; is the port firewalled or the event loop blocked?"
        ) from exc
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def serve_loopback(app: web.Application, host: str, port: int, server: str) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on ``host:port`` (loopback only; port 0 picks one), proven up; returns the
    runner (``cleanup()`` stops it) and the base URL."""
    if not is_loopback(host):
        raise ValueError(f"host: the {server} only binds loopback, not {host!r}")
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound_host, bound_port = runner.addresses[0][:2]
        await prove_listening(bound_host, bound_port, server)
    except BaseException:
        await runner.cleanup()
        raise
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return runner, f"http://{shown}:{bound_port}"
