"""Hostile and careless input hurts nobody else: a poison request is refused at the edge naming its
field, and even one that got past the edge could only roll back its own write (real daemon, real socket,
the loopback SMTP simulator)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from daemon.client import DaemonClient, RemoteError
from daemon.config import load_config
from daemon.core.errors import ConfigError
from daemon.simulators.suite import SimulatorSuite
from tests.conftest import RunningDaemon, make_config, start_daemon, stop_daemon
from tests.test_socket_api import raw_exchange
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


@pytest.fixture
async def mailer(short_tmp: Path, suite: SimulatorSuite) -> AsyncIterator[RunningDaemon]:
    """A daemon delivering by email only, to the loopback SMTP simulator."""
    running = await start_daemon(make_config(short_tmp, email=suite.config_sections()["email"]))
    yield running
    await stop_daemon(running)


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
    mailer: RunningDaemon, suite: SimulatorSuite
) -> None:
    daemon = mailer
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
    mailer: RunningDaemon, suite: SimulatorSuite, caplog: pytest.LogCaptureFixture
) -> None:
    daemon = mailer
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


# -- integers and strings at the socket edge ---------------------------------------------------------

HUGE = [2**64, 2**63, "99999999999999999999", "²", "--5", "1" * 5000]


@pytest.mark.parametrize("value", HUGE)
@pytest.mark.parametrize(("op", "field", "extra"), [
    ("show", "id", {}), ("cancel", "id", {}), ("retry", "id", {}), ("recipient.show", "id", {}),
    ("recipient.update", "id", {"name": "x"}), ("recipient.remove", "id", {}), ("recipient.link", "id", {}),
    ("list", "before_id", {}), ("list", "recipient_id", {}), ("list", "limit", {}),
    ("send", "recipient_id", {"message": "hi"}),
])
async def test_an_id_sqlite_cannot_hold_is_invalid_not_internal(
    bare_daemon: RunningDaemon, op: str, field: str, extra: dict[str, Any], value: object
) -> None:
    reply = await raw_call(bare_daemon, op, {**extra, field: value})
    assert reply["error"]["code"] == "invalid" and reply["error"]["field"] == field, reply


async def test_the_largest_sqlite_integer_is_simply_not_found(bare_daemon: RunningDaemon) -> None:
    reply = await raw_call(bare_daemon, "show", {"id": 2**63 - 1})
    assert reply["error"]["code"] == "not_found"
    added = await bare_daemon.call("recipient.add", name="Ann", telegram_chat_id=-(2**63 - 1))
    assert added["telegram_chat_id"] == -(2**63 - 1)


@pytest.mark.parametrize(("op", "params", "field"), [
    ("recipient.add", {"name": "Ann", "email": "\ud800@example.com"}, "email"),
    ("recipient.add", {"name": "Ann", "phone": "+1415555\udc000"}, "phone"),
    ("send", {"recipient_id": 1, "message": "hi", "chain": ["email\ud800"]}, "chain"),
    ("send", {"recipient_id": 1, "message": "hi", "deadline": "2030-01-01\ud800"}, "deadline"),
    ("send", {"recipient_id": 1, "message": "hi", "\ud800": 1}, "\\ud800"),
    ("list", {"search": "\ud800"}, "search"),
    ("list", {"status": "\ud800"}, "status"),
    ("backup", {"path": "/tmp/\ud800.db"}, "path"),
])
async def test_a_lone_surrogate_in_any_string_is_invalid_naming_the_field(
    bare_daemon: RunningDaemon, op: str, params: dict[str, Any], field: str
) -> None:
    await bare_daemon.call("recipient.add", name="Ann")
    reply = await raw_call(bare_daemon, op, params)
    assert reply["error"]["code"] == "invalid" and reply["error"]["field"] == field, reply
    assert await bare_daemon.call("list") == []


async def test_json_too_deep_or_too_long_for_the_parser_is_a_bad_request(bare_daemon: RunningDaemon) -> None:
    replies = await raw_exchange(bare_daemon, b"[" * 100_000 + b"]" * 100_000 + b"\n"
                                 + b'{"op": "list", "params": {"limit": ' + b"1" * 5000 + b"}}\n"
                                 + b'{"op": "ping", "id": "\\ud800"}\n')
    assert [r["error"]["code"] for r in replies[:2]] == ["bad_request", "bad_request"]
    assert "nested too deeply" in replies[0]["error"]["message"]
    assert replies[2] == {"id": "\ud800", "ok": True, "result": "pong"}  # echoed \u-escaped, the connection kept


# -- durations -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [1e12, 1e308, float("inf"), float("-inf"), float("nan"), 2**64, 315_619_201,
                                   0, -1, True, "300"])
@pytest.mark.parametrize("field", ["ack_timeout", "expires_in"])
async def test_a_duration_out_of_range_or_not_finite_is_invalid(
    bare_daemon: RunningDaemon, field: str, value: object
) -> None:
    await bare_daemon.call("recipient.add", name="Ann")
    with pytest.raises(RemoteError) as err:  # the client writes inf and nan as JSON's Infinity / NaN
        await bare_daemon.call("send", recipient_id=1, message="hi", **{field: value})
    assert (err.value.code, err.value.field) == ("invalid", field)
    assert await bare_daemon.call("list") == []


async def test_ten_years_is_the_longest_duration_accepted(bare_daemon: RunningDaemon) -> None:
    await bare_daemon.call("recipient.add", name="Ann")
    sent = await bare_daemon.call("send", recipient_id=1, message="hi", ack_timeout=315_619_200,
                                  expires_in=315_619_200)
    assert sent["ack_timeout"] == 315_619_200


def fnotify(socket: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon", "--socket", str(socket), *args],
                          capture_output=True, text=True, timeout=30, env={**os.environ, "FNOTIFY_CONFIG": ""})


@pytest.mark.parametrize(("args", "status", "says"), [
    (["send", "--to", "1", "-m", "hi", "--ack-timeout", "inf"], 2, "argument --ack-timeout: 'inf': must be a finite"),
    (["send", "--to", "1", "-m", "hi", "--ack-timeout", "nan"], 2, "argument --ack-timeout: 'nan': must be a finite"),
    (["send", "--to", "1", "-m", "hi", "--expires-in", "1e400"], 2, "argument --expires-in"),
    (["send", "--to", "1", "-m", "hi", "--wait", "--timeout", "nan"], 2, "argument --timeout"),
    (["send", "--to", "1", "-m", "hi", "--ack-timeout", "1e12"], 1, "ack_timeout: must be"),
    (["cancel", "99999999999999999999"], 1, "id: must be between 1 and 9223372036854775807"),
    (["show", "99999999999999999999"], 1, "id: must be between 1 and 9223372036854775807"),
    (["recipient", "add", "--name", "M", "--telegram-chat-id", str(2**64)], 1, "telegram_chat_id: must be"),
])
async def test_the_cli_refuses_absurd_numbers_naming_the_option_or_field(
    bare_daemon: RunningDaemon, args: list[str], status: int, says: str
) -> None:
    await bare_daemon.call("recipient.add", name="Ann")
    result = await asyncio.to_thread(fnotify, bare_daemon.config.daemon.socket_path, *args)
    assert result.returncode == status and says in result.stderr
    assert "Traceback" not in result.stderr
    assert await bare_daemon.call("list") == [] and len(await bare_daemon.call("recipient.list")) == 1


@pytest.mark.parametrize(("toml", "key"), [
    ("[email]\ntimeout = inf", "[email] timeout"),
    ("[sms]\ntimeout = nan", "[sms] timeout"),
    ("[telegram]\nlink_ttl = 1e12", "[telegram] link_ttl"),
    ("[retry]\nbackoff_max = inf", "[retry] backoff_max"),
    ("[daemon]\nshutdown_grace = nan", "[daemon] shutdown_grace"),
    ("[daemon]\nallowed_uids = [18446744073709551616]", "[daemon] allowed_uids"),
    ("[email]\nrate = -inf", "[email] rate"),
])
def test_a_config_number_that_is_not_finite_or_out_of_range_is_refused_by_key(
    short_tmp: Path, toml: str, key: str
) -> None:
    path = short_tmp / "fnotify.toml"
    path.write_text(toml + "\n")
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(path)
