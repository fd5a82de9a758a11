"""Hostile and careless input hurts nobody else: a poison request is refused at the edge naming its
field, and even one that got past the edge could only roll back its own write (real daemon, real socket,
the loopback SMTP simulator)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from daemon.client import DaemonClient
from daemon.simulators.suite import SimulatorSuite
from tests.conftest import RunningDaemon
from tests.test_storage_faults import writer_pragma

CLIENTS, SENDS_EACH = 32, 10  # 320 good sends from 32 other clients


async def raw_call(running: RunningDaemon, op: str, params: dict[str, Any]) -> dict[str, Any]:
    """One request written as ASCII JSON (a lone surrogate travels as its \\ud800 escape, as any
    JSON library writes it), one reply read."""
    reader, writer = await asyncio.open_unix_connection(str(running.config.daemon.socket_path))
    try:
        writer.write(json.dumps({"id": 1, "op": op, "params": params}).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    assert line, f"{op} {params!r}: the daemon closed the connection without a reply"
    reply: dict[str, Any] = json.loads(line)
    return reply


async def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


def poison(recipient: int) -> list[tuple[str, dict[str, Any], str]]:
    """Requests that used to raise inside the shared write batch: (op, params, the field to be named)."""
    return [
        ("recipient.add", {"name": "Mallory", "telegram_chat_id": 2**64}, "telegram_chat_id"),
        ("recipient.add", {"name": "Mallory", "telegram_chat_id": -(2**63) - 1}, "telegram_chat_id"),
        ("recipient.add", {"name": "\ud800"}, "name"),
        ("recipient.update", {"id": recipient, "telegram_chat_id": 2**70}, "telegram_chat_id"),
        ("send", {"recipient_id": recipient, "message": "\ud800"}, "message"),
        ("send", {"recipient_id": recipient, "message": "hi", "subject": "\udfff"}, "subject"),
        ("send", {"recipient_id": recipient, "message": "hi", "idempotency_key": "k\ud800"}, "idempotency_key"),
        ("send", {"recipient_id": 2**64, "message": "hi"}, "recipient_id"),
        ("cancel", {"id": 99999999999999999999}, "id"),
        ("retry", {"id": 2**64}, "id"),
    ]


async def test_poison_requests_mixed_into_hundreds_of_good_sends_fail_alone(
    daemon: RunningDaemon, suite: SimulatorSuite
) -> None:
    ann = (await daemon.call("recipient.add", name="Ann", email="ann@example.com"))["id"]
    clients = [await DaemonClient(daemon.config.daemon.socket_path).connect() for _ in range(CLIENTS)]

    async def good(client: DaemonClient, n: int) -> list[dict[str, Any]]:
        return [await client.call("send", recipient_id=ann, message=f"good {n}-{i}", chain=["email"])
                for i in range(SENDS_EACH)]

    async def bad(n: int, op: str, params: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.005 * n)  # spread over the good traffic: each in another write batch
        return await raw_call(daemon, op, params)

    try:
        cases = poison(ann)
        results = await asyncio.gather(*(good(c, n) for n, c in enumerate(clients)),
                                       *(bad(n, op, params) for n, (op, params, _) in enumerate(cases)))
    finally:
        for client in clients:
            await client.close()
    sent = [n for batch in results[:CLIENTS] for n in batch]
    assert len(sent) == CLIENTS * SENDS_EACH and all(n["created"] for n in sent)
    for (op, params, field), reply in zip(cases, results[CLIENTS:], strict=True):
        assert reply["ok"] is False, (op, params)
        assert (reply["error"]["code"], reply["error"].get("field")) == ("invalid", field), (op, reply)

    await suite.smtp.wait_for_messages(len(sent), timeout=30)
    finals = [await daemon.wait_final(n["id"], timeout=10) for n in sent]
    assert {n["status"] for n in finals} == {"delivered"}
    assert sorted(m.text.strip() for m in suite.smtp.received) == sorted(n["text"] for n in sent)
    assert [r["name"] for r in await daemon.call("recipient.list")] == ["Ann"]


async def test_an_engine_write_the_database_refuses_does_not_strand_its_notification(
    daemon: RunningDaemon, suite: SimulatorSuite, caplog: pytest.LogCaptureFixture
) -> None:
    ann = (await daemon.call("recipient.add", name="Ann", email="ann@example.com"))["id"]
    suite.smtp.faults.inject("latency", delay=0.3, count=1)  # holds the attempt in flight
    sent = await daemon.call("send", recipient_id=ann, message="disk full on db-1", chain=["email"])
    await wait_for(lambda: suite.smtp.connections > 0)
    await writer_pragma(daemon, "PRAGMA query_only = ON")  # the database turns read-only mid-attempt
    # the engine could not record the outcome (nor, now, release its claim while read-only)
    await wait_for(lambda: "cannot release its claim" in caplog.text or "claimed until restart" in caplog.text)
    assert suite.smtp.received  # the provider had taken it
    await writer_pragma(daemon, "PRAGMA query_only = OFF")

    final = await daemon.wait_final(sent["id"], timeout=10)  # no restart needed
    assert final["status"] == "delivered"
    assert [a["outcome"] for a in final["attempts"]] == ["interrupted", "delivered"]
    assert "walk stopped by StorageError" in final["attempts"][0]["error"]
    assert len(suite.smtp.received) == 2  # at-least-once: sent again, as after a crash
