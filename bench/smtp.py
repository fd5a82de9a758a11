"""``--only smtp``: end to end over SMTP to one server (the simulator), the daemon's pool of
``CONNECTIONS`` connections, beside a bare aiosmtplib loop with as many connections, sending the same
kind of message (the same headers, about the same size) to the same server in the same run.

Target: the daemon achieves >= 70 % of the bare loop's rate.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid
from typing import Any

import aiosmtplib

from bench.common import Row, add_recipients, enqueue, verdict, wait_delivered
from bench.procs import DaemonProc
from bench.startup import without_telegram

CONNECTIONS = 4  # the daemon's default [email] pool_size
SENDER = "alerts@failover-notify.test"
RATIO_TARGET = 0.70


def smtp_endpoint(channels: str) -> tuple[str, int]:
    section = channels.split("[email]", 1)[1].split("\n\n", 1)[0]
    values = dict(line.split(" = ", 1) for line in section.splitlines() if " = " in line)
    return values["host"].strip('"'), int(values["port"])


async def bare_aiosmtplib(channels: str, count: int, connections: int) -> dict[str, Any]:
    """``count`` messages over ``connections`` connected aiosmtplib clients, each reused, each message
    written as bytes (no ``EmailMessage``): the strictest reference a loop of aiosmtplib gives."""
    host, port = smtp_endpoint(channels)
    pending = iter(range(count))

    async def worker() -> None:
        client = aiosmtplib.SMTP(hostname=host, port=port, timeout=30)
        await client.connect()
        try:
            for i in pending:
                # the headers the daemon writes (Date, Message-ID, Auto-Submitted as well), so the server
                # parses the same message; written as bytes, the cheapest a client can do, so the
                # reference is the server's and the connections' limit, not the email package's
                to = f"bench{i % 100}@example.com"
                raw = (f"From: {SENDER}\r\nTo: {to}\r\nSubject: bench {i}\r\n"
                       f"Date: {format_datetime(datetime.now(UTC))}\r\n"
                       f"Message-ID: {make_msgid(idstring=f'n{i}', domain='failover-notify.test')}\r\n"
                       "Auto-Submitted: auto-generated\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n"
                       f"Content-Transfer-Encoding: 7bit\r\nMIME-Version: 1.0\r\n\r\nbench {i}\r\n")
                await client.sendmail(SENDER, [to], raw.encode("ascii"))
        finally:
            await client.quit()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return {"count": count, "connections": connections, "per_s": count / (time.perf_counter() - began)}


async def end_to_end(ctx: Any, count: int) -> dict[str, Any]:
    channels = without_telegram(ctx.channels).replace("[email]\n", f"[email]\npool_size = {CONNECTIONS}\n", 1)
    daemon = DaemonProc(ctx.work / "e2e-smtp", channels)
    await daemon.start("status")
    try:
        recipients = await add_recipients(daemon, telegram=False)
        began = time.perf_counter()
        count = (await enqueue(daemon, recipients, 8, count, chain=["email"]))["count"]
        await wait_delivered(daemon, count, 120)
        return {"count": count, "connections": CONNECTIONS, "delivered_per_s": count / (time.perf_counter() - began)}
    finally:
        await daemon.stop()


async def run(ctx: Any) -> dict[str, Any]:
    daemon = await end_to_end(ctx, ctx.args.smtp)
    reference = await bare_aiosmtplib(ctx.channels, ctx.args.smtp, CONNECTIONS)
    return {"smtp": daemon, "smtp_reference": reference}


def rows(r: dict[str, Any]) -> list[Row]:
    if "smtp" not in r:
        return []
    e, ref = r["smtp"], r["smtp_reference"]
    ratio = e["delivered_per_s"] / ref["per_s"]
    return [Row(f"end to end over SMTP, one server, {e['connections']} connections", f"{e['delivered_per_s']:,.0f}/s",
                f"bare aiosmtplib {ref['per_s']:,.0f}/s", f"{ratio:.2f}x",
                f">= {RATIO_TARGET:.2f}x: {verdict(ratio >= RATIO_TARGET)}", f"{e['count']} delivered")]
