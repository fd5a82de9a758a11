"""Subjects survive the trip through SMTP exactly: RFC 2047 encoding that loses no space.

Python 3.11's header folder drops the space between two encoded words (decoders ignore whitespace
between them, RFC 2047 §6.2), so "темы, довольно" used to arrive as "темы,довольно". Each subject
here goes through the adapter to the SMTP simulator and is decoded from the raw bytes it received.
"""

from __future__ import annotations

import email
import re
from collections.abc import AsyncIterator
from email import policy

import pytest

from daemon.channels.email import EmailChannel, default_subject
from daemon.core.errors import PermanentError
from daemon.simulators.smtp import SmtpSimulator
from tests.test_channel_email import email_config, outgoing

CORPUS = [
    "Первая строка без темы, довольно длинная: сервер db-1 заполнен",
    "Бэкап завершён успешно, база данных orders восстановлена за 42 секунды на реплике db-2",
    "Диск заполнен на 91 %",
    "🔥 db-1 горит 🔥 🚒 пожарные 🚒 уже в пути, ожидайте ответа",
    "👩‍💻 деплой 🇺🇦 флаги и ZWJ: 👨‍👩‍👧‍👦 семья",
    "Backup ✅ done",
    "naïve café: crème brûlée at 12:00, déjà vu",
    "Mixed ASCII and кириллица, word by word, and ascii again at the end of a long line",
    "日本語の件名、とても長い件名がここにあります。サーバーの容量が不足しています",
    "two  spaces  inside,   three here and a tab\tthere",
    " leading space",
    "trailing space ",
    "=?utf-8?b?SGk=?= looks like an encoded word",
    "x" * 120,
    "a" + " б" * 80,
    "",
]
ENCODED_WORD = re.compile(r"=\?[^?]+\?[bBqQ]\?[^?]*\?=")


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpSimulator]:
    sim = SmtpSimulator()
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def channel(smtp: SmtpSimulator) -> AsyncIterator[EmailChannel]:
    adapter = EmailChannel(email_config(smtp))
    yield adapter
    await adapter.close()


def received_subject(raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=policy.default)
    return str(message["Subject"])


def subject_lines(raw: bytes) -> list[str]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    lines = head.split("\r\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("Subject:"))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith((" ", "\t"))), len(lines))
    return lines[start:end]


async def test_every_subject_in_the_corpus_decodes_to_exactly_the_text(
    channel: EmailChannel, smtp: SmtpSimulator
) -> None:
    for n, subject in enumerate(CORPUS):
        await channel.send(outgoing("body", subject=subject, notification_id=n))
    records = await smtp.wait_for_messages(len(CORPUS))
    assert [received_subject(r.raw) for r in records] == CORPUS
    assert [r.subject for r in records] == CORPUS  # the simulator's own parser agrees


async def test_encoded_subjects_keep_to_the_line_and_word_limits(channel: EmailChannel, smtp: SmtpSimulator) -> None:
    for n, subject in enumerate(CORPUS):
        await channel.send(outgoing("body", subject=subject, notification_id=n))
    for record in await smtp.wait_for_messages(len(CORPUS)):
        lines = subject_lines(record.raw)
        assert all(len(line) <= 78 for line in lines), lines
        assert all(len(word) <= 75 for word in ENCODED_WORD.findall("".join(lines))), lines


async def test_a_plain_ascii_subject_stays_readable_on_the_wire(channel: EmailChannel, smtp: SmtpSimulator) -> None:
    await channel.send(outgoing("body", subject="Disk 91% full on db-1"))
    [record] = await smtp.wait_for_messages(1)
    assert subject_lines(record.raw) == ["Subject: Disk 91% full on db-1"]


@pytest.mark.parametrize("first_line", CORPUS[:9])
async def test_a_subject_taken_from_the_first_line_decodes_exactly(
    channel: EmailChannel, smtp: SmtpSimulator, first_line: str
) -> None:
    await channel.send(outgoing(f"{first_line}\nsecond line"))
    [record] = await smtp.wait_for_messages(1)
    assert received_subject(record.raw) == default_subject(first_line)


async def test_a_subject_that_cannot_be_encoded_is_refused_before_connecting(
    channel: EmailChannel, smtp: SmtpSimulator
) -> None:
    with pytest.raises(PermanentError, match="cannot build the email"):
        await channel.send(outgoing("body", subject="lone \ud800 surrogate"))
    assert smtp.connections == 0
