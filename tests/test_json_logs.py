"""``[daemon] log_format = "json"``: the real daemon, as a child process, logs one JSON object per line,
with the attempt's fields on the engine's line per attempt, and no secret anywhere."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from daemon.client import DaemonClient
from daemon.core.redact import Redactor
from daemon.runtime.logs import setup_logging
from daemon.simulators.suite import SimulatorSuite
from tests.daemon_process import DaemonProcess, write_config
from tests.test_secrets import echo_server


async def credential_echo() -> tuple[web.AppRunner, str]:
    """A broken SMS gateway that quotes the Basic credentials it was sent, decoded, in its Twilio-style
    502 body (the adapter puts the provider's message into the attempt error)."""

    async def echo(request: web.Request) -> web.Response:
        _, _, encoded = request.headers.get("Authorization", "").partition(" ")
        credentials = base64.b64decode(encoded).decode()
        return web.json_response({"code": 20500, "message": f"gateway rejected {credentials}"}, status=502)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def parse_lines(text: str) -> list[dict[str, Any]]:
    lines = text.splitlines()
    assert lines, "the daemon logged nothing"
    return [json.loads(line) for line in lines]  # every line, or the test fails naming it


async def test_json_logs_parse_line_by_line_carry_the_attempt_fields_and_no_secret(short_tmp: Path) -> None:
    echo, echo_url = await echo_server()  # quotes the bot token (in the URL) back in its 502 body
    gateway, gateway_url = await credential_echo()  # quotes the SMS auth token
    async with SimulatorSuite() as suite:
        sections = suite.config_sections()
        sections["telegram"]["api_base"] = echo_url
        sections["sms"]["base_url"] = gateway_url
        sections["retry"] = {"attempts_per_channel": 2, "backoff_initial": 0.05, "backoff_max": 0.1}
        config = write_config(short_tmp / "fnotify.toml", short_tmp, sections)
        config.write_text(config.read_text().replace(
            "[daemon]\n", '[daemon]\nlog_level = "DEBUG"\nlog_format = "json"\n', 1))
        daemon = DaemonProcess(config, short_tmp / "fnotify.sock", short_tmp / "daemon.log")
        await daemon.start(env={"JOURNAL_STREAM": ""})  # a plain stream, whatever runs the tests
        try:
            async with DaemonClient(daemon.socket_path) as client:
                ann = await client.call("recipient.add", name="Ann", telegram_chat_id=77, email="ann@example.com",
                                        phone="+14155550100")
                sent = await client.call("send", recipient_id=ann["id"], message="disk full",
                                         chain=["telegram", "sms", "email"])
                async with asyncio.timeout(20):
                    while (shown := await client.call("show", id=sent["id"]))["status"] in ("queued", "sending"):
                        await asyncio.sleep(0.05)
            assert await daemon.terminate() == 0
        finally:
            if daemon.proc is not None and daemon.proc.returncode is None:
                daemon.kill()
                await daemon.wait()
            await echo.cleanup()
            await gateway.cleanup()
    text = daemon.log()
    assert shown["status"] == "delivered", shown
    for secret in (suite.telegram_token, suite.telegram_token.split(":")[1], suite.sms_auth_token):
        assert secret not in text
    entries = parse_lines(text)
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)
    attempts = [e for e in entries if e["logger"] == "daemon.core.engine" and "outcome" in e]
    assert [(e["channel"], e["outcome"]) for e in attempts] == [
        ("telegram", "retry"), ("telegram", "failed"), ("sms", "retry"), ("sms", "failed"), ("email", "delivered")]
    for entry in attempts:
        assert entry["notification_id"] == sent["id"] and entry["recipient_id"] == ann["id"]
        assert isinstance(entry["duration_ms"], float) and entry["duration_ms"] >= 0
        assert entry["level"] == "INFO" and entry["time"].endswith("+00:00")
    assert "gateway rejected" in attempts[2]["message"]  # it quoted the auth token: masked, as in text logs
    assert "[REDACTED]" in attempts[2]["message"]
    assert any(e["level"] == "DEBUG" for e in entries)


def test_an_exception_stays_on_one_line_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("INFO", Redactor(["hunter2-secret"]), "json")
        try:
            raise RuntimeError("login failed with hunter2-secret")
        except RuntimeError:
            logging.getLogger("daemon.test").exception("adapter broke, password %s", "hunter2-secret")
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    (entry,) = parse_lines(stream.getvalue())
    assert entry["message"] == "adapter broke, password [REDACTED]"
    assert "RuntimeError: login failed with [REDACTED]" in entry["exception"]
    assert "hunter2" not in stream.getvalue()
