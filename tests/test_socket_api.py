"""The Unix socket API, over a real socket, against a daemon with every channel disabled."""

from __future__ import annotations

import asyncio
import json
import os
import stat

import pytest

from daemon.client import RemoteError
from daemon.protocol import MAX_LINE
from tests.conftest import RunningDaemon


async def raw_exchange(running: RunningDaemon, payload: bytes) -> list[dict[str, object]]:
    reader, writer = await asyncio.open_unix_connection(str(running.config.daemon.socket_path))
    writer.write(payload)
    await writer.drain()
    writer.write_eof()
    replies = [json.loads(line) for line in (await reader.read()).splitlines() if line.strip()]
    writer.close()
    await writer.wait_closed()
    return replies


async def test_socket_is_created_with_mode_0660(bare_daemon: RunningDaemon) -> None:
    mode = stat.S_IMODE(os.stat(bare_daemon.config.daemon.socket_path).st_mode)
    assert mode == 0o660


async def test_malformed_requests_get_an_error_naming_the_problem_and_the_daemon_stays_up(
    bare_daemon: RunningDaemon,
) -> None:
    replies = await raw_exchange(
        bare_daemon,
        b"not json\n[1,2]\n{\"params\":{}}\n{\"op\":\"fly\"}\n{\"op\":\"send\",\"params\":7}\n"
        b"{\"op\":\"send\",\"params\":{\"recipient_id\":1}}\n{\"op\":\"ping\",\"id\":9}\n",
    )
    assert [r["ok"] for r in replies] == [False] * 6 + [True]
    messages = [r["error"]["message"] for r in replies[:6]]  # type: ignore[index]
    assert "not valid JSON" in messages[0]
    assert "JSON object" in messages[1]
    assert replies[2]["error"]["field"] == "op"  # type: ignore[index]
    assert "unknown op 'fly'" in messages[3]
    assert replies[4]["error"]["field"] == "params"  # type: ignore[index]
    assert replies[5]["error"] == {"code": "invalid", "message": "message: required", "field": "message"}
    assert replies[6] == {"id": 9, "ok": True, "result": "pong"}
    assert await bare_daemon.call("ping") == "pong"


async def test_an_oversized_request_is_refused_and_the_connection_closed(bare_daemon: RunningDaemon) -> None:
    replies = await raw_exchange(bare_daemon, b"x" * (MAX_LINE + 10) + b"\n")
    assert replies[0]["error"]["code"] == "too_large"  # type: ignore[index]
    assert await bare_daemon.call("ping") == "pong"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "A", "email": "not-an-address"}, "email"),
        ({"name": "A", "phone": "12345"}, "phone"),
        ({"name": "A", "phone": "+1 415 555"}, "phone"),
        ({"name": "A", "telegram_chat_id": "abc"}, "telegram_chat_id"),
        ({"name": "A", "colour": "red"}, "colour"),
    ],
)
async def test_bad_recipient_fields_are_refused_by_name(
    bare_daemon: RunningDaemon, params: dict[str, object], field: str
) -> None:
    with pytest.raises(RemoteError) as err:
        await bare_daemon.call("recipient.add", **params)
    assert err.value.field == field
    assert await bare_daemon.call("recipient.list") == []


async def test_recipients_are_added_listed_updated_and_removed(bare_daemon: RunningDaemon) -> None:
    added = await bare_daemon.call("recipient.add", name="Ann", email="Ann@Example.com", phone="+14155550100")
    assert added["email"] == "Ann@example.com"  # the domain is normalised
    assert added["phone"] == "+14155550100"
    assert added["telegram_state"] == "not linked"
    updated = await bare_daemon.call("recipient.update", id=added["id"], telegram_chat_id=4242, opt_out=["sms"])
    assert updated["telegram_chat_id"] == 4242 and updated["opt_out"] == ["sms"]
    assert updated["telegram_state"] == "linked"
    assert [r["name"] for r in await bare_daemon.call("recipient.list")] == ["Ann"]
    await bare_daemon.call("recipient.remove", id=added["id"])
    with pytest.raises(RemoteError, match="does not exist"):
        await bare_daemon.call("recipient.show", id=added["id"])


async def test_a_telegram_chat_cannot_belong_to_two_recipients(bare_daemon: RunningDaemon) -> None:
    await bare_daemon.call("recipient.add", name="Ann", telegram_chat_id=77)
    with pytest.raises(RemoteError, match="already linked to recipient 1") as err:
        await bare_daemon.call("recipient.add", name="Bob", telegram_chat_id=77)
    assert err.value.code == "conflict"


async def test_send_to_an_unknown_recipient_is_refused(bare_daemon: RunningDaemon) -> None:
    with pytest.raises(RemoteError, match="recipient 5 does not exist") as err:
        await bare_daemon.call("send", recipient_id=5, message="hi")
    assert err.value.code == "not_found"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"message": "x"}, "recipient_id"),
        ({"recipient_id": 1, "message": "   "}, "message"),
        ({"recipient_id": 1, "message": "x", "chain": ["telegram", "pigeon"]}, "chain"),
        ({"recipient_id": 1, "message": "x", "chain": ["sms", "sms"]}, "chain"),
        ({"recipient_id": 1, "message": "x", "subject": "a\r\nBcc: evil@example.com"}, "subject"),
        ({"recipient_id": 1, "message": "x", "ack_timeout": -1}, "ack_timeout"),
        ({"recipient_id": 1, "message": "x", "deadline": "tomorrow"}, "deadline"),
        ({"recipient_id": 1, "message": "x", "deadline": "9999-12-31T23:59:59+14:00"}, "deadline"),
        ({"recipient_id": 1, "message": "x", "deadline": "0001-01-01T00:00:00-14:00"}, "deadline"),
        ({"recipient_id": 1, "message": "x", "deadline": "2999-01-01T00:00:00Z"}, "deadline"),
        ({"recipient_id": 1, "message": "x", "expires_in": 1e12}, "expires_in"),
        ({"recipient_id": 1, "message": "x", "expires_in": 0}, "expires_in"),
    ],
)
async def test_bad_send_requests_name_the_field(
    bare_daemon: RunningDaemon, params: dict[str, object], field: str
) -> None:
    await bare_daemon.call("recipient.add", name="Ann")
    with pytest.raises(RemoteError) as err:
        await bare_daemon.call("send", **params)
    assert err.value.field == field
    assert await bare_daemon.call("list") == []


async def test_a_second_send_with_the_same_key_returns_the_first_and_sends_nothing(
    bare_daemon: RunningDaemon,
) -> None:
    await bare_daemon.call("recipient.add", name="Ann")
    first = await bare_daemon.call("send", recipient_id=1, message="one", idempotency_key="k-1")
    second = await bare_daemon.call("send", recipient_id=1, message="one", idempotency_key="k-1")
    assert first["created"] is True and second["created"] is False
    assert second["id"] == first["id"] and second["text"] == "one"
    assert len(await bare_daemon.call("list")) == 1


async def test_every_channel_disabled_means_three_skips_then_failed(bare_daemon: RunningDaemon) -> None:
    await bare_daemon.call("recipient.add", name="Ann", email="ann@example.com")
    sent = await bare_daemon.call("send", recipient_id=1, message="hello")
    final = await bare_daemon.wait_final(sent["id"])
    assert final["status"] == "failed"
    assert [(a["channel"], a["outcome"], a["error"]) for a in final["attempts"]] == [
        ("telegram", "skipped", "channel disabled"),
        ("email", "skipped", "channel disabled"),
        ("sms", "skipped", "channel disabled"),
    ]


async def test_retry_redrives_a_failed_notification_and_keeps_its_log(bare_daemon: RunningDaemon) -> None:
    await bare_daemon.call("recipient.add", name="Ann")
    sent = await bare_daemon.call("send", recipient_id=1, message="hello", chain=["email"])
    await bare_daemon.wait_final(sent["id"])
    with pytest.raises(RemoteError, match="is failed: cannot cancel"):
        await bare_daemon.call("cancel", id=sent["id"])
    await bare_daemon.call("retry", id=sent["id"])
    final = await bare_daemon.wait_final(sent["id"])
    assert final["status"] == "failed" and len(final["attempts"]) == 2


async def test_subscribe_streams_live_events(bare_daemon: RunningDaemon) -> None:
    await bare_daemon.call("recipient.add", name="Ann")
    async with bare_daemon.client.subscribe() as stream:  # live once it returns: no need to wait
        sent = await bare_daemon.call("send", recipient_id=1, message="hello", chain=["sms"])
        events = [await asyncio.wait_for(anext(stream), 5)]
        while events[-1]["event"] != "notification.status" or events[-1]["data"]["status"] != "failed":
            events.append(await asyncio.wait_for(anext(stream), 5))
    assert [e["event"] for e in events] == ["notification.created", "attempt.finished", "notification.status"]
    assert events[0]["data"]["id"] == sent["id"]


async def test_a_paused_daemon_stores_sends_and_delivers_after_resume(bare_daemon: RunningDaemon) -> None:
    await bare_daemon.call("recipient.add", name="Ann")
    assert await bare_daemon.call("pause") == {"paused": True}
    sent = await bare_daemon.call("send", recipient_id=1, message="held", chain=["sms"])
    await asyncio.sleep(0.2)
    held = await bare_daemon.call("show", id=sent["id"])
    assert held["status"] == "queued" and held["attempts"] == []
    assert (await bare_daemon.call("status"))["paused"] is True
    await bare_daemon.call("resume")
    assert (await bare_daemon.wait_final(sent["id"]))["status"] == "failed"
