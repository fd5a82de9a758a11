"""Recipient groups and batch sends end to end: a real daemon delivering to the loopback simulators, driven
over its Unix socket, by the ``fnotify`` CLI as a real process, and over the HTTP API."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from daemon.client import RemoteError
from daemon.simulators.suite import SimulatorSuite
from tests.conftest import RunningDaemon
from tests.test_cli_output import fnotify
from tests.test_http_api import Api, api  # noqa: F401  (fixture)


async def three_people(daemon: RunningDaemon) -> list[int]:
    return [(await daemon.call("recipient.add", name=name, email=f"{name.lower()}@example.com"))["id"]
            for name in ("Ann", "Bob", "Cid")]


async def wait_batch(daemon: RunningDaemon, batch_id: int, timeout: float = 15.0) -> dict[str, Any]:
    """Poll (tests only) until every notification of the batch is final."""
    async with asyncio.timeout(timeout):
        while True:
            batch: dict[str, Any] = await daemon.call("batch.show", id=batch_id)
            if set(batch["counts"]) <= {"delivered", "failed", "cancelled", "expired", "acknowledged"}:
                return batch
            await asyncio.sleep(0.05)


async def test_a_group_send_delivers_to_each_member_and_the_batch_shows_each_status(
    daemon: RunningDaemon, suite: SimulatorSuite
) -> None:
    ann, bob, cid = await three_people(daemon)
    code, out, err = await fnotify(daemon.config.daemon.socket_path, "group", "add", "oncall",
                                   "--members", f"{ann},{cid},{bob}")
    assert (code, out.strip()) == (0, "group oncall added: 3 member(s)"), err
    code, out, err = await fnotify(daemon.config.daemon.socket_path, "send", "--to-group", "oncall", "-m",
                                   "disk full", "--chain", "email", "--json")
    assert code == 0, err
    sent = json.loads(out)
    assert sent["created"] is True and sent["group"] == "oncall"
    assert [n["recipient_id"] for n in sent["notifications"]] == [ann, bob, cid]
    assert len({n["id"] for n in sent["notifications"]}) == 3
    batch = await wait_batch(daemon, sent["batch_id"])
    assert batch["counts"] == {"delivered": 3}
    assert [(n["recipient_name"], n["status"], n["channel"]) for n in batch["notifications"]] == [
        ("Ann", "delivered", "email"), ("Bob", "delivered", "email"), ("Cid", "delivered", "email")]
    assert sorted(m.rcpt_tos for m in suite.smtp.received) == [
        ("ann@example.com",), ("bob@example.com",), ("cid@example.com",)]
    one = await daemon.call("show", id=sent["notifications"][0]["id"])
    assert one["batch_id"] == sent["batch_id"]

    code, out, err = await fnotify(daemon.config.daemon.socket_path, "show", "--batch", str(sent["batch_id"]))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"batch {sent['batch_id']} -> group oncall"
    assert lines[2] == "  status:  delivered 3"
    assert [line.split()[2:5] for line in lines[5:]] == [["Ann", "delivered", "email"],
                                                         ["Bob", "delivered", "email"],
                                                         ["Cid", "delivered", "email"]]
    code, out, _ = await fnotify(daemon.config.daemon.socket_path, "show", "--batch", str(sent["batch_id"]),
                                 "--json")
    assert json.loads(out) == await daemon.call("batch.show", id=sent["batch_id"])
    code, out, _ = await fnotify(daemon.config.daemon.socket_path, "show", str(sent["notifications"][0]["id"]))
    assert f"  batch:   {sent['batch_id']} (fnotify show --batch {sent['batch_id']})" in out.splitlines()


async def test_a_group_send_with_a_key_is_one_batch_and_another_payload_is_a_conflict(
    bare_daemon: RunningDaemon,
) -> None:
    ids = await three_people(bare_daemon)
    await bare_daemon.call("group.add", name="oncall", members=ids)
    first = await bare_daemon.call("send", group="oncall", message="deploy", idempotency_key="deploy-42")
    again = await bare_daemon.call("send", group="oncall", message="deploy", idempotency_key="deploy-42")
    assert (first["created"], again["created"]) == (True, False)
    assert again["batch_id"] == first["batch_id"]
    assert [n["id"] for n in again["notifications"]] == [n["id"] for n in first["notifications"]]
    with pytest.raises(RemoteError) as conflict:
        await bare_daemon.call("send", group="oncall", message="rollback", idempotency_key="deploy-42")
    assert conflict.value.code == "conflict" and "with another message" in str(conflict.value)
    code, out, _ = await fnotify(bare_daemon.config.daemon.socket_path, "send", "--to-group", "oncall", "-m",
                                 "deploy", "--key", "deploy-42")
    assert code == 0 and out.startswith(f"batch {first['batch_id']} to group oncall: 3 notification(s) (already")
    race = await asyncio.gather(*(bare_daemon.call("send", group="oncall", message="race", idempotency_key="r-1")
                                  for _ in range(8)))
    assert len({r["batch_id"] for r in race}) == 1 and sum(r["created"] for r in race) == 1
    assert len(await bare_daemon.call("list", limit=100)) == 6


@pytest.mark.parametrize(("params", "code", "field", "message"), [
    ({"message": "x"}, "invalid", "recipient_id", "recipient_id: required"),
    ({"message": "x", "recipient_id": 1, "group": "oncall"}, "invalid", "group",
     "group: give either recipient_id or group, not both"),
    ({"message": "x", "group": "On Call"}, "invalid", "group", "group: a group name is 1 to 64"),
    ({"message": "x", "group": "nope"}, "not_found", None, "group 'nope' does not exist"),
    ({"message": "x", "group": "empty"}, "invalid", "group", "group: group 'empty' has no members"),
])
async def test_a_send_naming_no_one_both_or_a_bad_group_is_refused_clearly(
    bare_daemon: RunningDaemon, params: dict[str, Any], code: str, field: str | None, message: str
) -> None:
    await bare_daemon.call("recipient.add", name="Ann")
    await bare_daemon.call("group.add", name="empty")
    with pytest.raises(RemoteError) as refused:
        await bare_daemon.call("send", **params)
    assert (refused.value.code, refused.value.field) == (code, field)
    assert str(refused.value).startswith(message)
    assert await bare_daemon.call("list") == []


async def test_group_crud_over_the_socket_and_its_refusals(bare_daemon: RunningDaemon) -> None:
    ann, bob, cid = await three_people(bare_daemon)
    call = bare_daemon.call
    assert (await call("group.add", name="oncall", members=f"{ann},{bob}"))["members"] == [ann, bob]
    refusals = [
        ({"op": "group.add", "name": "oncall"}, "conflict", None, "group 'oncall' already exists"),
        ({"op": "group.add", "name": "ops", "members": [ann, 99]}, "invalid", "members",
         "members: recipient 99 does not exist"),
        ({"op": "group.add", "name": "-ops"}, "invalid", "name", "name: a group name is"),
        ({"op": "group.update", "name": "oncall", "members": [ann], "add": [bob]}, "invalid", "members",
         "members: give either members"),
        ({"op": "group.update", "name": "nope", "add": [ann]}, "not_found", None, "group 'nope' does not exist"),
        ({"op": "group.show", "name": "nope"}, "not_found", None, "group 'nope' does not exist"),
        ({"op": "group.remove", "name": "nope"}, "not_found", None, "group 'nope' does not exist"),
        ({"op": "batch.show", "id": 7}, "not_found", None, "batch 7 does not exist"),
    ]
    for params, code, field, message in refusals:
        op = params.pop("op")
        with pytest.raises(RemoteError) as refused:
            await call(op, **params)
        assert (refused.value.code, refused.value.field) == (code, field), op
        assert str(refused.value).startswith(message), (op, str(refused.value))
    assert [g["name"] for g in await call("group.list")] == ["oncall"]  # nothing half-made
    assert (await call("group.update", name="oncall", add=[cid], remove=[ann]))["members"] == [bob, cid]
    await call("recipient.remove", id=bob)
    assert (await call("group.show", name="oncall"))["members"] == [cid]
    assert (await call("group.update", name="oncall", rename="ops"))["name"] == "ops"
    assert await call("group.remove", name="ops") == {"name": "ops", "removed": True}
    assert await call("group.list") == []


async def test_the_group_commands_of_the_cli(bare_daemon: RunningDaemon) -> None:
    ann, bob, cid = await three_people(bare_daemon)
    socket = bare_daemon.config.daemon.socket_path
    assert (await fnotify(socket, "group", "add", "oncall", "--members", f"{ann},{bob}"))[0] == 0
    code, out, _ = await fnotify(socket, "group", "update", "oncall", "--add", str(cid), "--remove", str(ann))
    assert (code, out.strip()) == (0, "group oncall updated: 2 member(s)")
    code, out, _ = await fnotify(socket, "group", "list")
    assert out.splitlines() == ["group   members  recipients", f"oncall  2        {bob} Bob, {cid} Cid"]
    code, out, _ = await fnotify(socket, "group", "list", "--json")
    assert [(g["name"], g["members"]) for g in json.loads(out)] == [("oncall", [bob, cid])]
    code, out, err = await fnotify(socket, "group", "add", "ops", "--members", "1,99")
    assert code == 1 and "members: recipient 99 does not exist" in err
    code, out, err = await fnotify(socket, "send", "--to-group", "nope", "-m", "x")
    assert code == 1 and "group 'nope' does not exist" in err
    code, _, err = await fnotify(socket, "send", "--to", "1", "--to-group", "oncall", "-m", "x")
    assert code == 2 and "not allowed with argument" in err
    code, out, _ = await fnotify(socket, "group", "remove", "oncall")
    assert (code, out.strip()) == (0, "group oncall removed")


# -- HTTP ----------------------------------------------------------------------------------------

async def test_groups_over_http_and_a_send_to_a_group(api: Api) -> None:  # noqa: F811
    ann, bob = (await api.recipient(name="Ann"))["id"], (await api.recipient(name="Bob"))["id"]
    made = await api.client.post("/api/v1/groups", json={"name": "oncall", "members": [bob, ann]})
    assert made.status_code == 201 and made.json()["members"] == [ann, bob]
    assert (await api.client.post("/api/v1/groups", json={"name": "oncall"})).status_code == 409
    unknown = await api.client.post("/api/v1/groups", json={"name": "ops", "members": [ann, 77]})
    assert unknown.status_code == 422
    assert unknown.json() == {"errors": [{"field": "members", "message": "recipient 77 does not exist"}]}
    assert (await api.client.post("/api/v1/groups", json={"name": "ops", "members": "1,2"})).status_code == 400
    assert [g["name"] for g in (await api.client.get("/api/v1/groups")).json()] == ["oncall"]
    assert (await api.client.get("/api/v1/groups/oncall")).json()["members"] == [ann, bob]
    assert (await api.client.get("/api/v1/groups/nope")).status_code == 404
    assert (await api.client.get("/api/v1/groups/Bad%20Name")).status_code == 422

    body = {"group": "oncall", "message": "disk full", "idempotency_key": "k-9"}
    sent = await api.client.post("/api/v1/notifications", json=body)
    again = await api.client.post("/api/v1/notifications", json=body)
    assert (sent.status_code, again.status_code) == (202, 200)
    batch = sent.json()
    assert batch["created"] is True and again.json()["batch_id"] == batch["batch_id"]
    assert [(n["recipient_id"], n["recipient_name"]) for n in batch["notifications"]] == [(ann, "Ann"), (bob, "Bob")]
    conflict = await api.client.post("/api/v1/notifications", json={**body, "message": "other"})
    assert conflict.status_code == 409
    both = await api.client.post("/api/v1/notifications", json={**body, "recipient_id": ann})
    assert both.status_code == 422 and both.json()["errors"] == [
        {"field": "group", "message": "give either recipient_id or group, not both"}]
    shown = await api.client.get(f"/api/v1/batches/{batch['batch_id']}")
    assert shown.status_code == 200 and shown.json()["batch_id"] == batch["batch_id"]
    assert (await api.client.get("/api/v1/batches/999")).status_code == 404
    one = (await api.client.get(f"/api/v1/notifications/{batch['notifications'][0]['id']}")).json()
    assert one["batch_id"] == batch["batch_id"]

    patched = await api.client.patch("/api/v1/groups/oncall", json={"rename": "ops", "remove": [ann]})
    assert patched.status_code == 200 and patched.json() == {**patched.json(), "name": "ops", "members": [bob]}
    assert (await api.client.delete("/api/v1/groups/ops")).json() == {"name": "ops", "removed": True}
    legacy = await api.client.post("/api/send/", json={"recipient": ann, "message": "still works"})
    assert legacy.status_code == 201 and legacy.json()["recipient"] == ann and legacy.json()["batch_id"] is None
