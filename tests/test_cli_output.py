"""``fnotify``'s human output never hands an API client's text to the terminal raw.

A message, subject or recipient name may carry ESC/BEL/OSC sequences (clear the screen, set the
window title, write the clipboard with OSC 52), a CR that overwrites a line, C1 controls or a bidi
override. Each command runs as a real ``fnotify`` process against a daemon on a Unix socket.
"""

from __future__ import annotations

import asyncio
import json
import sys
import unicodedata
from pathlib import Path

from daemon.protocol import visible
from tests.conftest import RunningDaemon

OSC_TITLE = "\x1b]0;pwned\x07"
OSC_CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4=\x07"
NAME = f"Bob {OSC_TITLE}{OSC_CLIPBOARD} \u202eevil\x9b31m"
SUBJECT = "disk \x1b[31mred\x1b[0m \u202etxt.exe"
MESSAGE = f"ok\x1b[2J\x1b[H\rDELIVERED\x07\n{OSC_CLIPBOARD}second line \x85 \u2028 \x7f"
BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def raw_controls(text: str) -> list[str]:
    """The characters in ``text`` a terminal would act on: controls other than newline, and bidi."""
    return [
        ch for ch in text
        if (unicodedata.category(ch) in ("Cc", "Zl", "Zp") and ch != "\n") or ch in BIDI
    ]


async def fnotify(socket: Path, *args: str) -> tuple[int, str, str]:
    # not subprocess.run: the daemon shares this event loop
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon", "--socket", str(socket), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def hostile_notification(daemon: RunningDaemon) -> tuple[int, int]:
    recipient = await daemon.call("recipient.add", name=NAME, email="bob@example.com")
    sent = await daemon.call("send", recipient_id=recipient["id"], message=MESSAGE, subject=SUBJECT)
    await daemon.wait_final(sent["id"])
    return recipient["id"], sent["id"]


async def test_show_list_and_recipient_list_print_control_characters_as_escapes(
    bare_daemon: RunningDaemon,
) -> None:
    _, notification_id = await hostile_notification(bare_daemon)
    socket = bare_daemon.config.daemon.socket_path
    show = await fnotify(socket, "show", str(notification_id))
    listing = await fnotify(socket, "list")
    recipients = await fnotify(socket, "recipient", "list")

    for status, out, err in (show, listing, recipients):
        assert status == 0, err
        assert raw_controls(out + err) == []
    assert "\\x1b]0;pwned\\x07" in recipients[1] and "\\u202eevil\\x9b31m" in recipients[1]
    assert "subject: disk \\x1b[31mred\\x1b[0m \\u202etxt.exe" in show[1]
    assert "message: ok\\x1b[2J\\x1b[H\\rDELIVERED\\x07\n" in show[1]
    # the message's second line is indented under it, so it cannot pass for a line of the report
    assert "\n           \\x1b]52;c;cm0gLXJmIH4=\\x07second line \\x85 \\u2028 \\x7f" in show[1]
    assert listing[1].splitlines()[1].endswith("ok\\x1b[2J\\x1b[H")  # the first line only: CR ends it
    # a name can't fake a row: the recipient table has its header and exactly one row
    assert len(recipients[1].splitlines()) == 2


async def test_json_output_stays_exact_and_still_carries_no_raw_controls(bare_daemon: RunningDaemon) -> None:
    _, notification_id = await hostile_notification(bare_daemon)
    socket = bare_daemon.config.daemon.socket_path
    status, out, err = await fnotify(socket, "show", str(notification_id), "--json")
    assert status == 0, err
    assert raw_controls(out.replace("\n", "")) == []
    shown = json.loads(out)
    assert (shown["text"], shown["subject"]) == (MESSAGE, SUBJECT)

    status, out, err = await fnotify(socket, "recipient", "list", "--json")
    assert status == 0, err
    assert [r["name"] for r in json.loads(out)] == [NAME]


async def test_recipient_add_echoes_the_name_escaped(bare_daemon: RunningDaemon) -> None:
    socket = bare_daemon.config.daemon.socket_path
    status, out, err = await fnotify(socket, "recipient", "add", "--name", NAME, "--email", "b@example.com")
    assert status == 0, err
    assert raw_controls(out) == []
    assert out.startswith("recipient 1 added: Bob \\x1b]0;pwned\\x07")


async def test_an_error_quoting_the_callers_text_prints_it_escaped(short_tmp: Path) -> None:
    status, _, err = await fnotify(short_tmp / f"no{OSC_TITLE}such\rsocket", "status")
    assert status == 3
    assert raw_controls(err) == []
    assert "no\\x1b]0;pwned\\x07such\\rsocket" in err


async def test_watch_prints_events_as_json_without_raw_controls(bare_daemon: RunningDaemon) -> None:
    recipient = await bare_daemon.call("recipient.add", name="Bob", email="bob@example.com")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon", "--socket", str(bare_daemon.config.daemon.socket_path), "watch",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        line = b""
        for _ in range(100):  # the watcher subscribes at its own pace: update until it reports one
            await bare_daemon.call("recipient.update", id=recipient["id"], name=NAME)
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), timeout=0.2)
                break
            except TimeoutError:
                continue
    finally:
        proc.terminate()
        await proc.wait()
    text = line.decode()
    assert text.endswith("\n") and raw_controls(text[:-1]) == []
    assert json.loads(text)["data"]["name"] == NAME


def test_visible_leaves_ordinary_unicode_alone() -> None:
    text = "Привет 👨‍👩‍👧‍👦 日本語 naïve — \\path"
    assert visible(text) == text
    assert visible("a\nb") == "a\\nb"
    assert visible("a\nb", keep_newlines=True) == "a\nb"
