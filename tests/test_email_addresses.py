"""Internal mail addresses: Active Directory ``.local`` domains, ``.internal``, ``.test``, a local MTA's
``root@localhost``. Any syntactically valid address is taken; the mail server decides deliverability.
Malformed syntax and header injection are still refused, naming the field."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from daemon.api.requests import RecipientCreate, parse
from daemon.core.errors import ValidationError
from daemon.simulators.suite import SimulatorSuite
from tests.conftest import RunningDaemon
from tests.daemon_process import REPO


def email(address: str) -> str | None:
    """The address as the recipient models take it (``recipient.add`` / ``POST /api/v1/recipients``)."""
    return parse(RecipientCreate, {"name": "Ops", "email": address}).email


INTERNAL = ["ops@corp.local", "root@localhost", "backup@nas.lan", "ci@build.test", "svc@api.internal",
            "admin@mailhost", "alerts@ops.home.arpa"]


async def fnotify(socket_path: Path, *args: str) -> tuple[int, str]:
    """The real CLI in a child process, talking to the in-process daemon's socket."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon", "--socket", str(socket_path), *args, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=dict(os.environ),
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


@pytest.mark.parametrize("address", INTERNAL)
def test_internal_and_single_label_domains_are_accepted(address: str) -> None:
    assert email(address) == address


@pytest.mark.parametrize(("address", "reason"), [
    ("a@b@c", "invalid characters: '@'"),
    ("ops@corp.local\r\nBcc: all@example.com", "U+000D"),
    ("ops@corp.local\nBcc: all@example.com", "U+000A"),
    ("no-at-sign", "must have an @-sign"),
    ("a@.local", "period immediately after the @-sign"),
    ("a..b@corp.local", "two periods in a row"),
    ("Ann <ann@corp.local>", "display name"),
])
def test_malformed_addresses_and_header_injection_are_still_refused(address: str, reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        email(address)
    assert caught.value.field == "email" and reason in caught.value.reason


async def test_recipient_add_from_the_cli_takes_corp_local_and_root_at_localhost(bare_daemon: RunningDaemon) -> None:
    socket_path = bare_daemon.config.daemon.socket_path
    for address in ("ops@corp.local", "root@localhost"):
        status, out = await fnotify(socket_path, "recipient", "add", "--name", "Ops", "--email", address, "--json")
        assert status == 0, out
        assert json.loads(out)["email"] == address
    status, out = await fnotify(socket_path, "recipient", "add", "--name", "Bad", "--email", "a@b@c")
    assert status == 1 and "email" in out and "'@'" in out
    assert [r["email"] for r in await bare_daemon.call("recipient.list")] == ["ops@corp.local", "root@localhost"]


async def test_the_mail_server_decides_a_local_address_is_delivered_or_refused(
    daemon: RunningDaemon, suite: SimulatorSuite,
) -> None:
    ops = await daemon.call("recipient.add", name="Ops", email="ops@corp.local", phone="+14155550100")
    sent = await daemon.call("send", recipient_id=ops["id"], message="disk full", chain=["email", "sms"])
    final = await daemon.wait_final(sent["id"])
    assert [(a["channel"], a["outcome"]) for a in final["attempts"]] == [("email", "delivered")]
    assert suite.smtp.received[0].rcpt_tos == ("ops@corp.local",)

    suite.smtp.faults.inject("permanent", target="ops@corp.local")  # 550: this server does not know it
    sent = await daemon.call("send", recipient_id=ops["id"], message="disk full", chain=["email", "sms"])
    final = await daemon.wait_final(sent["id"])
    assert [(a["channel"], a["outcome"]) for a in final["attempts"]] == [("email", "failed"), ("sms", "delivered")]
