"""Secrets never leave the daemon: after failures whose error texts quote URLs, grep everything the
daemon wrote (its log at DEBUG, the attempt errors in the database, the CLI's output) for the bot
token, the SMTP password and the SMS auth token."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from aiohttp import web

from daemon.client import DaemonClient
from daemon.simulators.suite import SimulatorSuite
from tests.daemon_process import REPO, DaemonProcess, write_config

SMTP_PASSWORD = "smtp-Pa55word-never-shown"


async def echo_server() -> tuple[web.AppRunner, str]:
    """A broken upstream that quotes the request back in its error body: path (the bot token is in
    it) and Authorization header (the SMS auth token), as some proxies and gateways do."""

    async def echo(request: web.Request) -> web.Response:
        return web.Response(status=502, text=f"bad gateway for {request.method} {request.url}"
                                             f" (Authorization: {request.headers.get('Authorization')})")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def cli(config: Path, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon", "--config", str(config), *args, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=dict(os.environ),
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=20)
    return out.decode()


async def test_no_secret_reaches_the_log_the_attempt_log_or_the_cli_after_failures(short_tmp: Path) -> None:
    echo, echo_url = await echo_server()
    async with SimulatorSuite() as suite:
        sections = suite.config_sections()
        sections["telegram"]["api_base"] = echo_url
        sections["sms"]["base_url"] = echo_url
        sections["email"].update(username="alerts", password=SMTP_PASSWORD)
        sections["retry"] = {"attempts_per_channel": 2, "backoff_initial": 0.05, "backoff_max": 0.1}
        config = write_config(short_tmp / "fnotify.toml", short_tmp, sections)
        config.write_text(config.read_text().replace("[daemon]\n", '[daemon]\nlog_level = "DEBUG"\n', 1))
        daemon = DaemonProcess(config, short_tmp / "fnotify.sock", short_tmp / "daemon.log")
        await daemon.start()
        secrets = [suite.telegram_token, suite.telegram_token.split(":")[1], SMTP_PASSWORD, suite.sms_auth_token]
        try:
            async with DaemonClient(daemon.socket_path) as client:
                ann = await client.call("recipient.add", name="Ann", telegram_chat_id=77, email="ann@example.com",
                                        phone="+14155550100")
                await suite.smtp.stop()  # unreachable; Telegram and SMS answer with the request quoted
                sent = await client.call("send", recipient_id=ann["id"], message="will fail everywhere")
                async with asyncio.timeout(20):
                    while (shown := await client.call("show", id=sent["id"]))["status"] != "failed":
                        await asyncio.sleep(0.05)
            outputs = {
                "show": await cli(config, "show", str(sent["id"])),
                "show --json": await cli(config, "show", "--json", str(sent["id"])),
                "list": await cli(config, "list"),
                "check": await cli(config, "check"),
            }
            assert await daemon.terminate() == 0
        finally:
            if daemon.proc is not None and daemon.proc.returncode is None:
                daemon.kill()
                await daemon.wait()
            await echo.cleanup()

    errors = [a["error"] or "" for a in shown["attempts"]]
    assert {a["channel"] for a in shown["attempts"]} == {"telegram", "email", "sms"} and all(errors)
    written = {"daemon log": daemon.log(), "attempt errors": "\n".join(errors), **outputs,
               "database": (short_tmp / "fnotify.db").read_bytes().decode("utf-8", "replace")}
    for where, text in written.items():
        for secret in secrets:
            assert secret not in text, f"{where} shows a secret"
