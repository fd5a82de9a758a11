"""Binding checks for the simulators: loopback hosts only, and proof that a server is up.

Every simulator uses ``is_loopback``; the SMTP simulator proves itself by reading the greeting instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress

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
