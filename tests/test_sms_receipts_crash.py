"""A delivery receipt wait survives SIGKILL: the daemon as a real process, killed (no clean stop) while an
accepted SMS waits for its receipt; after the restart the same wait goes on (no resend, no interrupted
attempt) and Twilio's signed callback to the new process resolves it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from daemon.client import DaemonClient
from daemon.simulators.suite import SimulatorSuite
from tests.daemon_process import DaemonProcess, write_config
from tests.test_sms_receipts import PATH, PHONE, free_port

WAITING = ("SELECT n.status, a.outcome, r.message_sid FROM sms_receipts r JOIN attempts a ON a.id = r.attempt_id"
           " JOIN notifications n ON n.id = r.notification_id WHERE a.finished_at IS NULL")


def waits_on_disk(state: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{state / 'fnotify.db'}?mode=ro", uri=True) as db:
        try:
            return db.execute(WAITING).fetchall()
        except sqlite3.OperationalError:  # the schema is not there yet
            return []


async def test_a_receipt_wait_survives_sigkill_and_resolves_after_the_restart(short_tmp: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}{PATH}"
    async with SimulatorSuite() as suite:
        suite.sms.send_callbacks = False  # Twilio's report comes only after the kill
        suite.sms.receipt_for(PHONE, "undelivered", 30006)
        sections = suite.config_sections()
        sections["telegram"]["enabled"] = False
        sections["sms"].update({"receipts": "callback", "status_callback_url": url})
        config = write_config(short_tmp / "fnotify.toml", short_tmp, sections)
        with config.open("a") as toml:  # write_config renders no lists
            toml.write(f'[http]\nenabled = true\nlisten = "127.0.0.1:{port}"\ntokens = ["t0ken-for-the-tests-only"]\n')
        daemon = DaemonProcess(config, short_tmp / "fnotify.sock", short_tmp / "daemon.log")
        await daemon.start()
        try:
            async with DaemonClient(daemon.socket_path) as client:
                ann = await client.call("recipient.add", name="Ann", email="ann@example.com", phone=PHONE)
                nid = (await client.call("send", recipient_id=ann["id"], message="disk full",
                                         chain=["sms", "email"]))["id"]
            await suite.sms.wait_for_messages(1)
            sid = suite.sms.messages[0].sid
            async with asyncio.timeout(10):  # the wait is written right after Twilio accepted the SMS
                while not waits_on_disk(short_tmp):
                    await asyncio.sleep(0.02)
            daemon.kill()
            assert await daemon.wait() == -9
            assert waits_on_disk(short_tmp) == [("sending", None, sid)]

            await daemon.start()
            async with DaemonClient(daemon.socket_path) as client:
                after_restart = await client.call("show", id=nid)
                await suite.sms.post_statuses(url, sid, PHONE, "+15005550006")
                async with asyncio.timeout(15):
                    while (final := await client.call("show", id=nid))["status"] == "sending":
                        await asyncio.sleep(0.05)
        finally:
            await daemon.terminate()
    assert after_restart["status"] == "sending"
    assert [(a["channel"], a["outcome"]) for a in after_restart["attempts"]] == [("sms", None)]  # not interrupted
    assert suite.sms.callbacks == [(sid, 200), (sid, 200)]
    assert final["status"] == "delivered"
    assert [(a["channel"], a["outcome"]) for a in final["attempts"]] == [("sms", "undelivered"), ("email", "delivered")]
    assert final["attempts"][0]["error"] == "undelivered 30006: landline or unreachable carrier"
    assert len(suite.sms.messages) == 1  # the SMS was not sent again after the kill
    assert len(suite.smtp.received) == 1
