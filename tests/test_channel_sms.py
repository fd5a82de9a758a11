"""The SMS adapter against a real SmsSimulator on 127.0.0.1: delivery, classification, secrets."""

from __future__ import annotations

import base64
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from aiohttp import web

from daemon.channels.sms import SmsChannel, parse_retry_after
from daemon.channels.sms_segments import sms_segments
from daemon.config import SmsConfig
from daemon.core.channel import OutgoingMessage
from daemon.core.errors import PermanentError, TransientError
from daemon.core.models import Recipient
from daemon.simulators.sms import SmsSimulator

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "sim-auth-token-5f1e2d"
WEBHOOK_TOKEN = "hook-token-9a8b7c"
SENDER = "+15005550006"
PHONE = "+15558675310"


def message(text: str = "disk full on db-1", phone: str | None = PHONE) -> OutgoingMessage:
    return OutgoingMessage(notification_id=1, recipient=Recipient(id=1, name="Ops", phone=phone), text=text)


def twilio_config(base_url: str, **overrides: Any) -> SmsConfig:
    values: dict[str, Any] = {
        "enabled": True,
        "provider": "twilio",
        "base_url": base_url,
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "sender": SENDER,
        "timeout": 2.0,
    }
    return SmsConfig(**(values | overrides))


def webhook_config(url: str, **overrides: Any) -> SmsConfig:
    values: dict[str, Any] = {
        "enabled": True,
        "provider": "webhook",
        "webhook_url": url,
        "auth_token": WEBHOOK_TOKEN,
        "sender": SENDER,
        "timeout": 2.0,
    }
    return SmsConfig(**(values | overrides))


@pytest.fixture
async def sim() -> AsyncIterator[SmsSimulator]:
    simulator = SmsSimulator(ACCOUNT_SID, AUTH_TOKEN, webhook_token=WEBHOOK_TOKEN)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def open_channel() -> AsyncIterator[Callable[[SmsConfig], SmsChannel]]:
    """Build channels inside a test; every one is closed afterwards."""
    opened: list[SmsChannel] = []

    def build(config: SmsConfig) -> SmsChannel:
        opened.append(SmsChannel(config))
        return opened[-1]

    yield build
    for channel in opened:
        await channel.close()


@pytest.fixture
def twilio(sim: SmsSimulator, open_channel: Callable[[SmsConfig], SmsChannel]) -> SmsChannel:
    assert sim.base_url is not None
    return open_channel(twilio_config(sim.base_url))


@pytest.fixture
def webhook(sim: SmsSimulator, open_channel: Callable[[SmsConfig], SmsChannel]) -> SmsChannel:
    return open_channel(webhook_config(f"{sim.base_url}/webhook"))


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[web.Application], Awaitable[str]]]:
    """Run a throwaway aiohttp app on loopback (for provider answers the simulator never gives)."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- delivery ----------------------------------------------------------------------------------


async def test_twilio_delivers_a_unicode_body_and_returns_the_sid(
    twilio: SmsChannel, sim: SmsSimulator
) -> None:
    text = "Сервер упал 🔥 — ünïcödé ✓ 漢字"
    sid = await twilio.send(message(text))
    [record] = sim.messages
    assert sid == record.sid
    assert sid is not None and re.fullmatch(r"SM[0-9a-f]{32}", sid)
    assert (record.provider, record.to, record.from_, record.body) == ("twilio", PHONE, SENDER, text)


async def test_twilio_request_is_a_form_post_with_basic_auth(twilio: SmsChannel, sim: SmsSimulator) -> None:
    seen: list[httpx.Request] = []

    async def capture(request: httpx.Request) -> None:
        seen.append(request)

    (await twilio._client.get()).event_hooks = {"request": [capture]}
    await twilio.send(message("ping & pong = 100%"))
    [request] = seen
    assert request.method == "POST"
    assert request.url.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.content.decode()) == {
        "To": [PHONE],
        "From": [SENDER],
        "Body": ["ping & pong = 100%"],
    }
    credentials = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {credentials}"


async def test_webhook_delivers_json_with_the_bearer_token(webhook: SmsChannel, sim: SmsSimulator) -> None:
    seen: list[httpx.Request] = []

    async def capture(request: httpx.Request) -> None:
        seen.append(request)

    (await webhook._client.get()).event_hooks = {"request": [capture]}
    message_id = await webhook.send(message("héllo 👋"))
    [record] = await sim.wait_for_messages(1, timeout=1)
    assert message_id == record.sid
    assert (record.provider, record.to, record.from_, record.body) == ("webhook", PHONE, SENDER, "héllo 👋")
    assert seen[0].headers["authorization"] == f"Bearer {WEBHOOK_TOKEN}"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [({"message_id": "m-1"}, "m-1"), ({"sid": "s-2"}, "s-2"), ({"ok": True}, None), (None, None)],
)
async def test_webhook_returns_whatever_id_the_gateway_gives(
    serve: Callable[[web.Application], Awaitable[str]],
    open_channel: Callable[[SmsConfig], SmsChannel],
    answer: dict[str, Any] | None,
    expected: str | None,
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(answer) if answer is not None else web.Response(status=204)

    app = web.Application()
    app.router.add_post("/send", handler)
    channel = open_channel(webhook_config(f"{await serve(app)}/send"))
    assert await channel.send(message()) == expected


async def test_one_client_and_one_connection_serve_many_sends(twilio: SmsChannel, sim: SmsSimulator) -> None:
    await twilio.send(message("#0"))  # the client is made at the first send
    client = twilio._client.made
    for n in range(1, 3):
        await twilio.send(message(f"#{n}"))
    assert client is not None and twilio._client.made is client
    assert len(sim.messages) == 3
    assert sim.connections == 1


# --- classification ----------------------------------------------------------------------------


async def test_rate_limit_is_transient_and_carries_retry_after(twilio: SmsChannel, sim: SmsSimulator) -> None:
    sim.faults.inject("rate_limit", count=1, retry_after=7)
    with pytest.raises(TransientError, match="Twilio 20429") as caught:
        await twilio.send(message())
    assert caught.value.retry_after == 7.0
    assert await twilio.send(message()) is not None  # the fault was used up


async def test_fractional_retry_after_is_kept(webhook: SmsChannel, sim: SmsSimulator) -> None:
    sim.faults.inject("rate_limit", count=1, retry_after=0.25)
    with pytest.raises(TransientError) as caught:
        await webhook.send(message())
    assert caught.value.retry_after == 0.25


@pytest.mark.parametrize(
    ("kind", "error", "text"),
    [
        ("error", TransientError, "Twilio 20500: Internal Server Error (HTTP 500)"),
        ("down", TransientError, "SMS twilio: unreachable (RemoteProtocolError"),
        ("permanent", PermanentError, "Twilio 21211: Invalid 'To' Phone Number (HTTP 400)"),
        ("blocked", PermanentError, "Twilio 21610: Attempt to send to unsubscribed recipient"),
    ],
)
async def test_each_fault_maps_to_its_error_class(
    twilio: SmsChannel, sim: SmsSimulator, kind: Any, error: type[Exception], text: str
) -> None:
    sim.faults.inject(kind, target=PHONE)
    with pytest.raises(error) as caught:
        await twilio.send(message())
    assert str(caught.value).startswith(text)
    assert type(caught.value) is error
    assert sim.messages == []


async def test_a_fault_for_another_number_does_not_touch_this_one(
    twilio: SmsChannel, sim: SmsSimulator
) -> None:
    sim.faults.inject("permanent", target="+15550000000")
    assert await twilio.send(message()) is not None


async def test_webhook_server_error_is_transient(webhook: SmsChannel, sim: SmsSimulator) -> None:
    sim.faults.inject("error", count=1)
    with pytest.raises(TransientError, match="SMS webhook HTTP 500"):
        await webhook.send(message())


async def test_a_number_twilio_cannot_parse_fails_permanently(twilio: SmsChannel) -> None:
    with pytest.raises(PermanentError, match="Twilio 21211: Invalid 'To' Phone Number"):
        await twilio.send(message(phone="0800 CALL ME"))


async def test_a_slow_provider_times_out_as_transient(
    sim: SmsSimulator, open_channel: Callable[[SmsConfig], SmsChannel]
) -> None:
    assert sim.base_url is not None
    channel = open_channel(twilio_config(sim.base_url, timeout=0.1))
    sim.faults.inject("latency", count=1, delay=0.3)
    with pytest.raises(TransientError, match="timed out"):
        await channel.send(message())


async def test_a_little_latency_still_delivers(twilio: SmsChannel, sim: SmsSimulator) -> None:
    sim.faults.inject("latency", count=1, delay=0.05)
    assert await twilio.send(message()) is not None


@pytest.mark.parametrize("provider", ["twilio", "webhook"])
async def test_nothing_listening_is_transient(
    open_channel: Callable[[SmsConfig], SmsChannel], provider: str
) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    config = twilio_config(base) if provider == "twilio" else webhook_config(f"{base}/webhook")
    with pytest.raises(TransientError, match="unreachable"):
        await open_channel(config).send(message())


async def test_a_wrong_auth_token_fails_permanently_and_is_never_shown(
    sim: SmsSimulator, open_channel: Callable[[SmsConfig], SmsChannel]
) -> None:
    assert sim.base_url is not None
    wrong = "wrong-token-that-must-stay-secret"
    channel = open_channel(twilio_config(sim.base_url, auth_token=wrong))
    with pytest.raises(PermanentError) as sending:
        await channel.send(message())
    with pytest.raises(PermanentError, match="credentials rejected") as checking:
        await channel.check()
    assert "Twilio 20003: Authenticate (HTTP 401)" in str(sending.value)
    for exc in (sending.value, checking.value):
        assert wrong not in str(exc) and wrong not in repr(exc.args)
    assert sim.messages == []


async def test_a_wrong_webhook_token_fails_permanently(
    sim: SmsSimulator, open_channel: Callable[[SmsConfig], SmsChannel]
) -> None:
    channel = open_channel(webhook_config(f"{sim.base_url}/webhook", auth_token="not-the-hook-token"))
    with pytest.raises(PermanentError, match="SMS webhook HTTP 401: unauthorized") as caught:
        await channel.send(message())
    assert "not-the-hook-token" not in str(caught.value)


async def test_a_gateway_echoing_the_token_has_it_redacted(
    serve: Callable[[web.Application], Awaitable[str]], open_channel: Callable[[SmsConfig], SmsChannel]
) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"error": f"token {request.headers['Authorization']} revoked"}, status=403)

    app = web.Application()
    app.router.add_post("/send", handler)
    channel = open_channel(webhook_config(f"{await serve(app)}/send"))
    with pytest.raises(PermanentError) as caught:
        await channel.send(message())
    assert WEBHOOK_TOKEN not in str(caught.value)
    assert "[REDACTED]" in str(caught.value)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("12", 12.0), ("0.5", 0.5), ("-3", None), ("soon", None), (None, None), ("nan", None)],
)
def test_retry_after_parses_seconds_and_rejects_nonsense(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_retry_after_accepts_an_http_date() -> None:
    now = parsedate_to_datetime("Wed, 21 Oct 2015 07:28:00 GMT")
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=now) == 30.0


# --- checks ------------------------------------------------------------------------------------


async def test_twilio_check_fetches_the_account_without_sending(
    twilio: SmsChannel, sim: SmsSimulator
) -> None:
    assert await twilio.check() == f"twilio account {ACCOUNT_SID} (active)"
    assert sim.messages == []


async def test_webhook_check_only_proves_reachability(webhook: SmsChannel, sim: SmsSimulator) -> None:
    assert await webhook.check() == "webhook reachable (no auth check)"
    assert sim.messages == []


async def test_webhook_check_with_nothing_listening_is_transient(
    open_channel: Callable[[SmsConfig], SmsChannel],
) -> None:
    channel = open_channel(webhook_config(f"http://127.0.0.1:{free_port()}/webhook"))
    with pytest.raises(TransientError):
        await channel.check()


# --- the simulator itself ----------------------------------------------------------------------


async def test_simulator_answers_in_twilio_shapes(sim: SmsSimulator) -> None:
    url = f"{sim.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    form = {"To": PHONE, "From": SENDER, "Body": "x" * 161}
    async with httpx.AsyncClient() as client:
        created = await client.post(url, data=form, auth=(ACCOUNT_SID, AUTH_TOKEN))
        refused = await client.post(url, data=form)
        no_body = await client.post(url, data={"To": PHONE, "From": SENDER}, auth=(ACCOUNT_SID, AUTH_TOKEN))
    resource = created.json()
    assert created.status_code == 201
    assert (resource["status"], resource["num_segments"], resource["from"]) == ("queued", "2", SENDER)
    assert parsedate_to_datetime(resource["date_created"]).tzinfo is not None
    assert resource["uri"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{resource['sid']}.json"
    assert refused.status_code == 401
    assert refused.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert (no_body.status_code, no_body.json()["code"]) == (400, 21602)


async def test_simulator_control_api_manages_faults_and_lists_messages(
    sim: SmsSimulator, twilio: SmsChannel, serve: Callable[[web.Application], Awaitable[str]]
) -> None:
    sub = web.Application()
    sub.add_routes(sim.control_routes())
    app = web.Application()
    app.add_subapp("/sms", sub)
    control = f"{await serve(app)}/sms"
    async with httpx.AsyncClient() as client:
        bad = await client.post(f"{control}/faults", json={"kind": "meteor"})
        assert bad.status_code == 400 and "kind: must be one of" in bad.json()["error"]
        assert (await client.post(f"{control}/faults", content=b"{not json")).status_code == 400
        added = await client.post(f"{control}/faults", json={"kind": "permanent", "count": 1})
        assert added.status_code == 201 and added.json()["kind"] == "permanent"
        with pytest.raises(PermanentError):
            await twilio.send(message())
        await client.post(f"{control}/faults", json={"kind": "error"})
        assert (await client.delete(f"{control}/faults")).status_code == 200
        await twilio.send(message("after clearing"))
        listed = (await client.get(f"{control}/messages")).json()
    assert [m["body"] for m in listed] == ["after clearing"]
    assert listed[0]["from"] == SENDER


async def test_simulator_refuses_to_bind_beyond_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        await SmsSimulator().start(host="0.0.0.0")


async def test_waiting_for_messages_that_never_come_says_how_many_arrived(sim: SmsSimulator) -> None:
    with pytest.raises(TimeoutError, match="0 message"):
        await sim.wait_for_messages(1, timeout=0.05)


# --- segments ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("Ç" * 160, 1),  # in GSM-7
        ("ç" * 71, 2),  # lowercase ç is not: UCS-2
        ("€" * 80, 1),  # extension characters cost two septets
        ("€" * 81, 2),
        ("a" * 152 + "€" + "a" * 152, 3),  # the ESC pair is never split
        ("ж" * 70, 1),
        ("ж" * 71, 2),
        ("ж" * 134, 2),
        ("ж" * 135, 3),
        ("👋" * 35, 1),  # emoji are two UTF-16 units
        ("👋" * 36, 2),
        ("ж" * 66 + "👋" + "ж" * 66, 3),  # the surrogate pair is never split
        ("a" * 159 + "ж", 3),  # one non-GSM character turns the whole text UCS-2
    ],
)
def test_sms_segments_counts_gsm7_and_ucs2(text: str, segments: int) -> None:
    assert sms_segments(text) == segments
