"""Idempotency keys: a repeat of the same request returns the first notification and sends nothing; the
same key with another payload is a conflict, never a silently dropped message (real daemon, real socket)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from daemon.client import RemoteError
from daemon.core.models import utcnow
from tests.conftest import RunningDaemon

FIRST: dict[str, Any] = {"recipient_id": 1, "message": "disk full on db-1", "subject": "db-1",
                         "chain": ["email", "sms"], "ack_timeout": 300, "expires_in": 600,
                         "idempotency_key": "alert-17"}


async def setup(daemon: RunningDaemon) -> dict[str, Any]:
    for name in ("Ann", "Bob"):
        await daemon.call("recipient.add", name=name)
    await daemon.call("pause")  # nothing is attempted: the stored notification stays as it was asked
    first: dict[str, Any] = await daemon.call("send", **FIRST)
    assert first["created"] is True
    return first


async def test_the_same_request_again_a_little_later_returns_the_first(bare_daemon: RunningDaemon) -> None:
    first = await setup(bare_daemon)
    later = utcnow() + timedelta(seconds=1.5)  # a client's retry: expires_in now means a later deadline
    bare_daemon.daemon.service.clock = lambda: later
    again = await bare_daemon.call("send", **FIRST)
    assert again["created"] is False and again["id"] == first["id"] and again["deadline"] == first["deadline"]
    assert len(await bare_daemon.call("list")) == 1


async def test_an_omitted_chain_is_the_default_chain(bare_daemon: RunningDaemon) -> None:
    await bare_daemon.call("recipient.add", name="Ann")
    first = await bare_daemon.call("send", recipient_id=1, message="hi", idempotency_key="k")
    again = await bare_daemon.call("send", recipient_id=1, message="hi", idempotency_key="k",
                                   chain=list(bare_daemon.config.chain.default))
    assert again["created"] is False and again["id"] == first["id"]


@pytest.mark.parametrize(("change", "named"), [
    ({"recipient_id": 2}, "recipient_id"),
    ({"recipient_id": 99}, "recipient_id"),  # not even a recipient: still not a silent 200
    ({"message": "disk full on db-2"}, "message"),
    ({"subject": None}, "subject"),
    ({"chain": ["sms", "email"]}, "chain"),
    ({"ack_timeout": 301}, "ack_timeout"),
    ({"ack_timeout": None}, "ack_timeout"),
    ({"expires_in": 601}, "expires_in"),
    ({"expires_in": None}, "deadline"),
    ({"expires_in": None, "deadline": "2030-01-01T00:00:00Z"}, "deadline"),
])
async def test_the_same_key_with_another_payload_is_a_conflict_naming_what_differs(
    bare_daemon: RunningDaemon, change: dict[str, Any], named: str
) -> None:
    first = await setup(bare_daemon)
    params = {k: v for k, v in {**FIRST, **change}.items() if v is not None}
    with pytest.raises(RemoteError) as err:
        await bare_daemon.call("send", **params)
    assert err.value.code == "conflict"
    assert f"idempotency_key 'alert-17' was used for notification {first['id']} with another {named}" in str(err.value)
    assert [n["text"] for n in await bare_daemon.call("list")] == [FIRST["message"]]  # nothing new, nothing changed
    assert (await bare_daemon.call("show", id=first["id"]))["deadline"] == first["deadline"]
