"""The email adapter against a real SMTP server (the simulator) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from daemon.channels.email import EmailChannel, default_subject
from daemon.config import EmailConfig
from daemon.core.channel import OutgoingMessage
from daemon.core.errors import PermanentError, TransientError
from daemon.core.models import Recipient
from daemon.simulators.smtp import SmtpSimulator

IVAN = Recipient(id=1, name="Ivan", email="ivan@example.com", phone="+14155550101")
SENDER = "Alerts <alerts@failover-notify.test>"
PASSWORD = "s3cret-Pa55word"


def email_config(sim: SmtpSimulator, **overrides: Any) -> EmailConfig:
    values: dict[str, Any] = {
        "enabled": True,
        "host": sim.host,
        "port": sim.port,
        "security": "none",
        "sender": SENDER,
        "timeout": 2.0,
    }
    values.update(overrides)
    return EmailConfig(**values)


def outgoing(text: str = "Disk 91% full on db-1", subject: str | None = None, **kw: Any) -> OutgoingMessage:
    return OutgoingMessage(
        notification_id=kw.pop("notification_id", 7),
        recipient=kw.pop("recipient", IVAN),
        text=text,
        subject=subject,
        **kw,
    )


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpSimulator]:
    sim = SmtpSimulator()
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def smtp_with_login() -> AsyncIterator[SmtpSimulator]:
    sim = SmtpSimulator(username="alerts", password=PASSWORD)
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def channel(smtp: SmtpSimulator) -> AsyncIterator[EmailChannel]:
    adapter = EmailChannel(email_config(smtp))
    yield adapter
    await adapter.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# --- delivery --------------------------------------------------------------------------------


async def test_a_message_is_delivered_with_its_subject_and_unicode_body(
    channel: EmailChannel, smtp: SmtpSimulator
) -> None:
    text = "Бэкап завершён ✅ 🚀\nsecond line: naïve café"
    message_id = await channel.send(outgoing(text, subject="Backup ✅ done"))

    [record] = await smtp.wait_for_messages(1)
    assert record.subject == "Backup ✅ done"
    assert record.text.rstrip("\n") == text
    assert record.rcpt_tos == ("ivan@example.com",)
    assert record.mail_from == "alerts@failover-notify.test"
    assert record.message_id == message_id
    assert message_id.startswith("<") and message_id.endswith("@failover-notify.test>")
    assert b"\nDate: " in record.raw and b"Auto-Submitted: auto-generated" in record.raw


async def test_a_missing_subject_becomes_the_first_line_of_the_text(
    channel: EmailChannel, smtp: SmtpSimulator
) -> None:
    await channel.send(outgoing("\n  Disk 91% full on db-1  \nmore detail"))
    [record] = await smtp.wait_for_messages(1)
    assert record.subject == "Disk 91% full on db-1"


def test_a_long_first_line_is_cut_to_sixty_characters_for_the_subject() -> None:
    subject = default_subject("x" * 200)
    assert len(subject) == 60 and subject.endswith("…")
    assert default_subject("   \n") == "Notification"


async def test_five_messages_share_one_connection(channel: EmailChannel, smtp: SmtpSimulator) -> None:
    for n in range(5):
        await channel.send(outgoing(f"message {n}", notification_id=n))
    assert len(await smtp.wait_for_messages(5)) == 5
    assert smtp.connections == 1


async def test_concurrent_sends_open_no_more_connections_than_the_pool_size(smtp: SmtpSimulator) -> None:
    adapter = EmailChannel(email_config(smtp, pool_size=2))
    try:
        await asyncio.gather(*(adapter.send(outgoing(f"message {n}")) for n in range(6)))
    finally:
        await adapter.close()
    assert len(smtp.received) == 6
    assert smtp.connections == 2


async def test_a_dropped_connection_is_replaced_on_the_next_send(
    channel: EmailChannel, smtp: SmtpSimulator
) -> None:
    await channel.send(outgoing("first"))
    smtp.faults.inject("down", count=1)
    with pytest.raises(TransientError):
        await channel.send(outgoing("second"))
    await channel.send(outgoing("third"))

    assert [r.text.strip() for r in smtp.received] == ["first", "third"]
    assert smtp.connections == 2


async def test_a_refused_mailbox_leaves_the_connection_usable(
    channel: EmailChannel, smtp: SmtpSimulator
) -> None:
    smtp.faults.inject("permanent", count=1)
    with pytest.raises(PermanentError):
        await channel.send(outgoing())
    await channel.send(outgoing())
    assert smtp.connections == 1


async def test_close_quits_the_pooled_connections(smtp: SmtpSimulator) -> None:
    adapter = EmailChannel(email_config(smtp))
    await adapter.send(outgoing())
    assert smtp.open_connections == 1
    await adapter.close()
    await smtp.wait_until_idle(timeout=2)


# --- failures are classified -----------------------------------------------------------------


async def test_a_550_mailbox_unavailable_is_a_permanent_error(
    channel: EmailChannel, smtp: SmtpSimulator
) -> None:
    smtp.faults.inject("permanent", target="ivan@example.com")
    with pytest.raises(PermanentError, match=r"550 .*mailbox unavailable"):
        await channel.send(outgoing())


async def test_a_451_temporary_failure_is_a_transient_error(
    channel: EmailChannel, smtp: SmtpSimulator
) -> None:
    smtp.faults.inject("error", count=1)
    with pytest.raises(TransientError, match="451"):
        await channel.send(outgoing())


async def test_a_421_rate_limit_is_a_transient_error(channel: EmailChannel, smtp: SmtpSimulator) -> None:
    smtp.faults.inject("rate_limit", count=1)
    with pytest.raises(TransientError, match="421"):
        await channel.send(outgoing())
    await channel.send(outgoing())  # a new connection replaces the one the server closed
    assert smtp.connections == 2


async def test_a_server_that_hangs_up_is_a_transient_error(
    channel: EmailChannel, smtp: SmtpSimulator
) -> None:
    smtp.faults.inject("down")
    with pytest.raises(TransientError, match="unreachable"):
        await channel.send(outgoing())


async def test_nothing_listening_on_the_port_is_a_transient_error() -> None:
    adapter = EmailChannel(EmailConfig(enabled=True, host="127.0.0.1", port=free_port(), timeout=1.0))
    try:
        with pytest.raises(TransientError, match="unreachable"):
            await adapter.send(outgoing())
    finally:
        await adapter.close()


async def test_a_server_slower_than_the_timeout_is_a_transient_error(smtp: SmtpSimulator) -> None:
    adapter = EmailChannel(email_config(smtp, timeout=0.2))
    smtp.faults.inject("latency", delay=2.0)
    try:
        with pytest.raises(TransientError, match="timed out"):
            await adapter.send(outgoing())
    finally:
        await adapter.close()


async def test_a_short_latency_still_delivers(channel: EmailChannel, smtp: SmtpSimulator) -> None:
    smtp.faults.inject("latency", delay=0.05, count=1)
    await channel.send(outgoing())
    assert len(smtp.received) == 1


# --- login -----------------------------------------------------------------------------------


async def test_the_right_credentials_log_in_and_deliver(smtp_with_login: SmtpSimulator) -> None:
    adapter = EmailChannel(email_config(smtp_with_login, username="alerts", password=PASSWORD))
    try:
        await adapter.send(outgoing())
    finally:
        await adapter.close()
    assert len(smtp_with_login.received) == 1


async def test_a_wrong_password_is_permanent_and_never_shown(smtp_with_login: SmtpSimulator) -> None:
    wrong = "wrong-" + PASSWORD
    adapter = EmailChannel(email_config(smtp_with_login, username="alerts", password=wrong))
    try:
        with pytest.raises(PermanentError, match="SMTP login rejected: 535") as caught:
            await adapter.send(outgoing())
        with pytest.raises(PermanentError) as checked:
            await adapter.check()
    finally:
        await adapter.close()
    for error in (caught.value, checked.value):
        chain = [error, error.__cause__]
        assert all(wrong not in str(e) and PASSWORD not in str(e) for e in chain)
        assert wrong not in repr(error)
    assert smtp_with_login.received == []


async def test_a_server_that_requires_login_refuses_an_anonymous_sender(
    smtp_with_login: SmtpSimulator,
) -> None:
    adapter = EmailChannel(email_config(smtp_with_login))
    try:
        with pytest.raises(PermanentError, match="530"):
            await adapter.send(outgoing())
    finally:
        await adapter.close()


# --- what the adapter refuses before talking to the server -----------------------------------


@pytest.mark.parametrize("subject", ["Hello\r\nBcc: victim@example.com", "line\nbreak", "cr\ronly"])
async def test_a_subject_with_a_line_break_is_refused(
    channel: EmailChannel, smtp: SmtpSimulator, subject: str
) -> None:
    with pytest.raises(PermanentError, match=r"subject .* contains a line break"):
        await channel.send(outgoing(subject=subject))
    assert smtp.connections == 0 and smtp.received == []


# --- check -----------------------------------------------------------------------------------


async def test_check_reaches_the_server_without_sending(channel: EmailChannel, smtp: SmtpSimulator) -> None:
    assert await channel.check() == f"smtp://{smtp.host}:{smtp.port} (none)"
    assert smtp.received == []


async def test_check_logs_in_when_a_username_is_configured(smtp_with_login: SmtpSimulator) -> None:
    adapter = EmailChannel(email_config(smtp_with_login, username="alerts", password=PASSWORD))
    try:
        assert (await adapter.check()).endswith("(none, login as alerts)")
    finally:
        await adapter.close()


async def test_check_of_a_closed_port_is_a_transient_error() -> None:
    adapter = EmailChannel(EmailConfig(enabled=True, host="127.0.0.1", port=free_port(), timeout=1.0))
    with pytest.raises(TransientError):
        await adapter.check()


# --- the simulator's control API -------------------------------------------------------------


async def test_faults_can_be_injected_and_messages_listed_over_http(
    channel: EmailChannel, smtp: SmtpSimulator
) -> None:
    app = web.Application()
    app.add_routes(smtp.control_routes())
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as http:
        bad = await http.post(server.make_url("/faults"), json={"kind": "nonsense"})
        assert bad.status == 400 and "kind" in (await bad.json())["error"]
        added = await http.post(server.make_url("/faults"), json={"kind": "error", "count": 1})
        assert added.status == 201
        with pytest.raises(TransientError):
            await channel.send(outgoing())
        await channel.send(outgoing("after the fault"))
        messages = await (await http.get(server.make_url("/messages"))).json()
        assert [m["text"].strip() for m in messages] == ["after the fault"]
        smtp.faults.inject("down")
        cleared = await http.delete(server.make_url("/faults"))
        assert cleared.status == 200 and smtp.faults.rules == []


async def test_the_simulator_refuses_to_bind_a_public_address() -> None:
    with pytest.raises(ValueError, match="loopback"):
        await SmtpSimulator().start("0.0.0.0")
