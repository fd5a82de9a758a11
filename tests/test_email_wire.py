"""The email adapter's fast path writes the bytes the email package would, byte for byte.

``EmailChannel.wire_message`` skips ``EmailMessage`` (about 1.5 ms of CPU a message) for plain ASCII
messages; each case here is also built the slow way (``build_message``, flattened as aiosmtplib's
``send_message`` does) with the same Date and Message-ID, and the two must be identical.
"""

from __future__ import annotations

import pytest
from aiosmtplib.email import flatten_message

from daemon.channels.email import EmailChannel, default_subject
from daemon.config import EmailConfig
from daemon.core.channel import OutgoingMessage
from daemon.core.models import Recipient

DATE = "Thu, 03 Dec 2026 14:56:47 +0000"
MESSAGE_ID = "<179630980745.29580.15421658208196194642.n5@failover-notify.test>"
SENDERS = ["Alerts <alerts@failover-notify.test>", "alerts@failover-notify.test",
           '"Ops, Team" <ops@failover-notify.test>', "Алерты <alerts@failover-notify.test>"]
# (address, subject or None, text): each must take the fast path
PLAIN = [
    ("ivan@example.com", None, "bench 3-4"),
    ("ivan@example.com", "Disk 91% full on db-1", "line one\nline two\r\nline three\rfour"),
    ("root@localhost", None, "\n  Disk 91% full on db-1  \nmore detail\n"),
    ("o'brien+alerts@corp.local", "a(b) \"c\" <d> [e] f;g:h,i.j\\k", ".leading dot\n..two\n."),
    ("a.b-c_d@x-y.internal", "x" * 60, "y" * 78),
    ("ops@corp.local", "s" * 30 + " " + "t" * 38, "tab\there\x00nul\x7f"),
    ("ops@corp.local", "", ""),
    ("ops@corp.local", None, "\n\n\n"),
]
# must go the slow way (the email package encodes or folds these)
NOT_PLAIN = [
    ("ivan@example.com", None, "Бэкап завершён ✅"),
    ("ivan@example.com", "Backup ✅ done", "ascii body"),
    ("ivan@example.com", "s" * 30 + " " + "t" * 39, "ascii body"),
    ("ivan@example.com", "s" * 61, "ascii body"),
    ("ivan@example.com", "two  spaces", "ascii body"),
    ("ivan@example.com", "=?utf-8?b?SGk=?= looks encoded", "ascii body"),
    ("ivan@example.com", None, "z" * 79),
    ("иван@example.com", "hi", "ascii body"),
    ('"john doe"@example.com', "hi", "ascii body"),
]


def channel(sender: str) -> EmailChannel:
    return EmailChannel(EmailConfig(enabled=True, host="127.0.0.1", port=2525, security="none", sender=sender))


def slow_bytes(adapter: EmailChannel, message: OutgoingMessage) -> bytes:
    built = adapter.build_message(message, date=DATE, message_id=MESSAGE_ID)
    return flatten_message(built, cte_type="8bit")


def outgoing(address: str, subject: str | None, text: str) -> OutgoingMessage:
    return OutgoingMessage(5, Recipient(id=1, name="x", email=address), text, subject)


@pytest.mark.parametrize("sender", SENDERS)
@pytest.mark.parametrize(("address", "subject", "text"), PLAIN)
def test_a_plain_message_is_written_directly_exactly_as_the_email_package_writes_it(
    sender: str, address: str, subject: str | None, text: str
) -> None:
    adapter = channel(sender)
    wire = adapter.wire_message(address, subject if subject is not None else default_subject(text), text, DATE,
                                MESSAGE_ID)
    assert wire is not None
    assert wire == slow_bytes(adapter, outgoing(address, subject, text))


@pytest.mark.parametrize(("address", "subject", "text"), NOT_PLAIN)
def test_anything_the_email_package_would_encode_or_fold_goes_the_slow_way(
    address: str, subject: str | None, text: str
) -> None:
    adapter = channel(SENDERS[0])
    assert adapter.wire_message(address, subject if subject is not None else default_subject(text), text, DATE,
                                MESSAGE_ID) is None


def test_a_sender_with_a_non_ascii_address_keeps_every_message_on_the_slow_way() -> None:
    adapter = channel("Alerts <алерты@failover-notify.test>")
    assert adapter.wire_message("ivan@example.com", "hi", "body", DATE, MESSAGE_ID) is None
